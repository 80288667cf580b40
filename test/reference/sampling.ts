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
