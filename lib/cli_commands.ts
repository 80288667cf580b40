/** Extra CLI commands (generate, serve, ...) registered by feature modules. */
export interface Command {
  describe: string;
  run(args: string[]): Promise<void>;
}

export const commands: Record<string, Command> = {};

// Models (lib/models): loaded on first use, so other commands never load model code.
commands.generate = {
  describe: 'stream a completion of a checkpoint folder: generate <dir> --prompt "..."',
  run: async (args) => (await import('./models/cli')).generateCommand(args),
};
commands.serve = {
  describe: 'OpenAI-style completions server: serve <dir> --port N',
  run: async (args) => (await import('./models/cli')).serveCommand(args),
};
