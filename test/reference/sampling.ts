/** Reference argmax: index of the first largest value of each row; NaN counts as the largest. */
export function argmaxRef(v: ArrayLike<number>, rows: number, n: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let i = 1; i < n; i++) {
      const a = v[r * n + i], b = v[r * n + best];
      if (Number.isNaN(b)) break;
      if (Number.isNaN(a) || a > b) best = i;
    }
    out[r] = best;
  }
  return out;
}

export interface SampleRowParams {
  temperature: number;
  topK: number;
  topP: number;
  uniform: number;
}

/**
 * Whether `token` is a draw the sampling rule (ops/sampling.h) allows for this row, in float64: the
 * kept set is a ranking prefix (logit desc, index asc) of the top-k, cut where its weight reaches
 * topP of theirs, and the token's interval of the running weight (in index order) holds
 * uniform · total. Decisions within a relative `eps` of a boundary accept either side (the
 * backends sum exact fixed-point weights of float32 exps).
 */
export function sampleAllowed(row: ArrayLike<number>, o: SampleRowParams, token: number, eps = 2e-5): boolean {
  const n = row.length;
  let best = 0;
  for (let i = 1; i < n; i++) {
    if (Number.isNaN(row[best])) break;
    if (Number.isNaN(row[i]) || row[i] > row[best]) best = i;
  }
  if (!(o.temperature > 0) || !Number.isFinite(row[best])) return token === best;
  const mx = row[best];
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (row[b] !== row[a] ? row[b] - row[a] : a - b));
  const cand = o.topK > 0 && o.topK < n ? order.slice(0, o.topK) : order;
  const w = (i: number) => Math.exp((row[i] - mx) / o.temperature);
  const S = cand.reduce((s, i) => s + w(i), 0);
  // the prefix lengths whose cut is within eps of the topP boundary
  let lo = cand.length, hi = cand.length;
  if (o.topP < 1) {
    let run = 0;
    lo = -1;
    for (let j = 0; j < cand.length; j++) {
      run += w(cand[j]);
      if (lo < 0 && run >= o.topP * S * (1 - eps)) lo = j + 1;
      if (run >= o.topP * S * (1 + eps) || j === cand.length - 1) {
        hi = j + 1;
        break;
      }
    }
  }
  for (let len = lo; len <= hi; len++) {
    const kept = cand.slice(0, len).sort((a, b) => a - b);
    if (!kept.includes(token)) continue;
    const M = kept.reduce((s, i) => s + w(i), 0);
    let before = 0;
    for (const i of kept) {
      if (i === token) break;
      before += w(i);
    }
    const at = o.uniform * M;
    if (at >= before - eps * M && at <= before + w(token) + eps * M) return true;
  }
  return false;
}

/** softmax probabilities of the kept set in float64 (the rule's distribution), by token. */
export function sampleProbabilities(row: ArrayLike<number>, o: Omit<SampleRowParams, 'uniform'>): Float64Array {
  const n = row.length;
  const mx = Math.max(...Array.from(row));
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (row[b] !== row[a] ? row[b] - row[a] : a - b));
  const cand = o.topK > 0 && o.topK < n ? order.slice(0, o.topK) : order;
  const w = (i: number) => Math.exp((row[i] - mx) / o.temperature);
  const S = cand.reduce((s, i) => s + w(i), 0);
  let kept = cand;
  if (o.topP < 1) {
    let run = 0;
    for (let j = 0; j < cand.length; j++) {
      run += w(cand[j]);
      if (run >= o.topP * S) {
        kept = cand.slice(0, j + 1);
        break;
      }
    }
  }
  const M = kept.reduce((s, i) => s + w(i), 0);
  const p = new Float64Array(n);
  for (const i of kept) p[i] = w(i) / M;
  return p;
}
