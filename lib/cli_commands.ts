/** Extra CLI commands (generate, serve, ...) registered by feature modules. */
export interface Command {
  describe: string;
  run(args: string[]): Promise<void>;
}

export const commands: Record<string, Command> = {};
