/**
 * Incremental detokenisation: token ids in, text pieces out, as tokens arrive. A piece never ends
 * inside a multi-byte character (a trailing U+FFFD is held back until the next token completes
 * it) nor inside what may become a stop string; the text stops before the first stop string.
 */
export interface TextStreamResult {
  /** Tokens consumed. */
  tokens: number;
  /** True when a stop string ended the text. */
  stoppedByString: boolean;
}

export async function* detokenize(
  tokens: AsyncIterable<number>,
  decode: (ids: number[]) => string,
  stops: readonly string[] = [],
  result: TextStreamResult = { tokens: 0, stoppedByString: false },
): AsyncGenerator<string> {
  const stopStrs = stops.filter((s) => s.length > 0);
  const ids: number[] = [];
  let sent = 0;
  for await (const id of tokens) {
    ids.push(id);
    result.tokens = ids.length;
    const full = decode(ids);
    const cut = firstStop(full, stopStrs);
    if (cut >= 0) {
      result.stoppedByString = true;
      if (cut > sent) yield full.slice(sent, cut);
      return; // leaving the for-await loop cancels the token source
    }
    let ready = full.endsWith('\uFFFD') ? full.length - 1 : full.length;
    ready = Math.min(ready, full.length - longestStopPrefix(full, stopStrs));
    if (ready > sent) {
      yield full.slice(sent, ready);
      sent = ready;
    }
  }
  const full = decode(ids);
  if (full.length > sent) yield full.slice(sent);
}

function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of the longest suffix of text that is a proper prefix of a stop string. */
function longestStopPrefix(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops)
    for (let k = Math.min(s.length - 1, text.length); k > best; k--)
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
  return best;
}
