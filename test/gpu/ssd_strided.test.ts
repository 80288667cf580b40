/**
 * ssdChunkScan on CUDA with row-strided inputs, read in place by the forward (no staging copies):
 * x, B, C (and z) as views of wider buffers — built exactly as mamba2's prefill builds them, a
 * channels-last (batch, seqlen, convDim) conv output sliced and unflattened — and dt as a slice of
 * an in_proj-like buffer (16-bit, or float32 / bf16 apart from x's dtype). Each case is compared
 * with the same call on contiguous copies (the same kernels on the same values: equal to 1e-6) and
 * with the float64 reference. Layouts that must fall back to the staging copy (token stride not a
 * multiple of 16 bytes, a misaligned start, transposed inner dims) must still be right, and so must
 * the backward (which keeps staging) given those views. Padding columns and spare tokens of every
 * buffer are NaN: a read outside a view shows up in the output. Whether the op read the views in
 * place or copied them is asked of it (ssdLastWorkspaceBytes().forwardInputCopies).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DType, Tensor, debugPoison, ssdChunkScan, tensor } from '../../lib/index';
import { SsdChunkScanOptions, ssdLastWorkspaceBytes } from '../../lib/ops/ssd';
import { describeGpu, expectClose, expectNoNaN, randnArray, relErr, rng, values } from '../helpers';
import { SsdRefInputs, ssdReference } from '../reference/ssd';
import { SsdCase, makeSsdProblem, roundedTo, ssdGrads, ssdTensors } from '../ssd_inputs';

const TOL: Record<string, number> = { float32: 1e-4, bfloat16: 1e-2, float16: 5e-3 };

/** Where an operand lives: buffer `buf`, from column `at` (its row: heads·headdim, groups·dstate or heads). */
interface Place {
  buf: string;
  at: number;
}

/**
 * A layout: buffers of (batch, seqlen + extra, width) elements (dtype: x's unless given), and the
 * places of x, B, C, z and dt. xT / dtT: x or dt instead as transposes of their own contiguous
 * buffers ((b, l, headdim, heads) / (b, heads, l)): inner dims not contiguous.
 */
interface Layout {
  bufs: Record<string, { width: number; extra?: number; dtype?: DType }>;
  x?: Place;
  B: Place;
  C: Place;
  z?: Place;
  dt?: Place;
  xT?: boolean;
  dtT?: boolean;
  /** whether the forward reads x, B, C, z and dt all in place (no copy of any of them) */
  inPlace: boolean;
}

interface StridedCase {
  name: string;
  c: SsdCase;
  layout: (c: SsdCase) => Layout;
  dtypes: DType[];
}

/**
 * mamba2's layout: x | B | C columns of one conv output (convDim = H·P + 2·G·N, plus `pad`; x from
 * column `xAt`), z | xBC | dt columns of in_proj; dt apart, in `dtDtype`, where given.
 */
function mamba2Layout(c: SsdCase, o: { pad?: number; extra?: number; dtDtype?: DType; xAt?: number } = {}): Layout {
  const I = c.heads * c.headdim, GN = c.groups * c.dstate, convDim = I + 2 * GN;
  const xAt = o.xAt ?? 0;
  const lay: Layout = {
    bufs: {
      conv: { width: xAt + convDim + (o.pad ?? 0), extra: o.extra },
      // in_proj's width rounded up to 8 columns, as the models' are (16-byte token strides: z in place)
      proj: { width: Math.ceil((I + convDim + c.heads) / 8) * 8, extra: o.extra },
    },
    x: { buf: 'conv', at: xAt },
    B: { buf: 'conv', at: xAt + I },
    C: { buf: 'conv', at: xAt + I + GN },
    z: c.z ? { buf: 'proj', at: 0 } : undefined,
    dt: { buf: 'proj', at: I + convDim },
    inPlace: true,
  };
  if (o.dtDtype) {
    lay.bufs.dtb = { width: c.heads + 3, extra: o.extra, dtype: o.dtDtype };
    lay.dt = { buf: 'dtb', at: 1 };
  }
  return lay;
}

const CASES: StridedCase[] = [
  {
    name: 'mamba2 prefill layout: batch 1, seqlen 300, 8 heads × 64, dstate 128, dt from in_proj, initial states',
    c: { batch: 1, seqlen: 300, heads: 8, headdim: 64, dstate: 128, groups: 1, D: 'head', dtBias: true, dtLimit: [0.001, 10], initialStates: true },
    layout: (c) => mamba2Layout(c),
    dtypes: ['bfloat16', 'float16', 'float32'],
  },
  {
    name: 'batch 3, odd seqlen 517, groups 2, z from in_proj, seqIdx, initial states, spare tokens between batch entries',
    c: { batch: 3, seqlen: 517, heads: 8, headdim: 32, dstate: 64, groups: 2, z: true, D: 'channel', dtBias: true, seqStarts: [64, 255, 256, 400], initialStates: true },
    layout: (c) => mamba2Layout(c, { extra: 5 }),
    dtypes: ['bfloat16', 'float16', 'float32'],
  },
  {
    name: 'own buffers: token strides of x, B, C, z, dt all different, headdim 72, dstate 40, seqlen 600, seqIdx on a chunk edge',
    c: { batch: 2, seqlen: 600, heads: 4, headdim: 72, dstate: 40, groups: 2, z: true, D: 'head', dtBias: true, seqStarts: [256, 300], initialStates: true },
    layout: (c) => ({
      bufs: {
        xb: { width: c.heads * c.headdim + 8 },
        bb: { width: 8 + c.groups * c.dstate + 16, extra: 3 },
        cb: { width: c.groups * c.dstate + 32, extra: 1 },
        zb: { width: 16 + c.heads * c.headdim + 24 },
        db: { width: c.heads + 5, extra: 2 },
      },
      x: { buf: 'xb', at: 0 },
      B: { buf: 'bb', at: 8 },
      C: { buf: 'cb', at: 0 },
      z: { buf: 'zb', at: 16 },
      dt: { buf: 'db', at: 3 },
      inPlace: true,
    }),
    dtypes: ['bfloat16', 'float16', 'float32'],
  },
  {
    name: 'dt in bfloat16 with float32 activations',
    c: { batch: 2, seqlen: 150, heads: 4, headdim: 16, dstate: 32, groups: 1, z: true, D: 'head', dtBias: true, initialStates: true },
    layout: (c) => mamba2Layout(c, { dtDtype: 'bfloat16' }),
    dtypes: ['float32'],
  },
  {
    name: 'dt in float32 with 16-bit activations',
    c: { batch: 2, seqlen: 150, heads: 4, headdim: 16, dstate: 32, groups: 1, z: true, D: 'head', initialStates: true },
    layout: (c) => mamba2Layout(c, { dtDtype: 'float32' }),
    dtypes: ['bfloat16', 'float16'],
  },
  {
    // rows of 66 bytes: x and z in place, but no tensor maps and element-by-element tile copies;
    // B and C start 16-byte aligned after 4 padding columns
    name: 'headdim 33, dstate 24 (rows not 16-byte multiples), seqlen 257',
    c: { batch: 2, seqlen: 257, heads: 4, headdim: 33, dstate: 24, groups: 2, z: true, D: 'channel', seqStarts: [100] },
    layout: (c) => ({
      bufs: { conv: { width: 232 }, proj: { width: 136 + 8 } },
      x: { buf: 'conv', at: 0 },
      B: { buf: 'conv', at: 136 },
      C: { buf: 'conv', at: 136 + c.groups * c.dstate },
      z: { buf: 'proj', at: 0 },
      dt: { buf: 'proj', at: 136 },
      inPlace: true,
    }),
    dtypes: ['bfloat16', 'float16'],
  },
  {
    // dstate > 128: the mma.sync / cp.async kernels (ssd_fwd_mma.cu) instead of the Hopper ones
    name: 'dstate 200 (the mma.sync kernels), headdim 40, groups 2, seqlen 300, seqIdx, initial states',
    c: { batch: 2, seqlen: 300, heads: 4, headdim: 40, dstate: 200, groups: 2, z: true, D: 'channel', dtBias: true, seqStarts: [64, 256], initialStates: true },
    layout: (c) => mamba2Layout(c, { extra: 2 }),
    dtypes: ['bfloat16', 'float16'],
  },
  {
    name: 'seqlen 1, batch 3 (the token stride is never stepped over)',
    c: { batch: 3, seqlen: 1, heads: 4, headdim: 64, dstate: 64, groups: 1, z: true, D: 'head', initialStates: true },
    layout: (c) => mamba2Layout(c, { extra: 2 }),
    dtypes: ['bfloat16', 'float32'],
  },
  // Fallbacks: the staging copy.
  {
    name: 'fallback: token stride not a multiple of 16 bytes (conv width + 1)',
    c: { batch: 2, seqlen: 300, heads: 4, headdim: 64, dstate: 64, groups: 2, z: true, D: 'head', dtBias: true, initialStates: true, seqStarts: [70] },
    layout: (c) => ({ ...mamba2Layout(c, { pad: 1 }), inPlace: false }),
    dtypes: ['bfloat16', 'float32'],
  },
  {
    // x staged, B and C (aligned) still read in place
    name: 'fallback: x starts 2 elements into the buffer (misaligned address)',
    c: { batch: 2, seqlen: 200, heads: 4, headdim: 64, dstate: 64, groups: 1, D: 'head', initialStates: true },
    layout: (c) => {
      const I = c.heads * c.headdim, GN = c.groups * c.dstate;
      return {
        bufs: { conv: { width: I + 8 + 2 * GN }, proj: { width: c.heads } },
        x: { buf: 'conv', at: 2 },
        B: { buf: 'conv', at: I + 8 },
        C: { buf: 'conv', at: I + 8 + GN },
        dt: { buf: 'proj', at: 0 },
        inPlace: false,
      };
    },
    dtypes: ['bfloat16', 'float16'],
  },
  {
    name: 'fallback: x and dt with transposed inner dims',
    c: { batch: 2, seqlen: 333, heads: 4, headdim: 32, dstate: 64, groups: 2, z: true, D: 'channel', dtBias: true, initialStates: true, seqStarts: [256] },
    layout: (c) => ({ ...mamba2Layout(c), x: undefined, dt: undefined, xT: true, dtT: true, inPlace: false }),
    dtypes: ['bfloat16', 'float32'],
  },
];

/** The operands of `pr` laid out by `lay` on CUDA (activations in `dtype`), as the views the op gets. */
function stridedOperands(pr: SsdRefInputs, lay: Layout, dtype: DType): { x: Tensor; B: Tensor; C: Tensor; z?: Tensor; dt: Tensor } {
  const { batch: b, seqlen: l, heads: H, headdim: P, dstate: N, groups: G } = pr;
  const data: Record<string, Float64Array> = {};
  for (const [k, v] of Object.entries(lay.bufs)) data[k] = new Float64Array(b * (l + (v.extra ?? 0)) * v.width).fill(NaN);
  // writes row-major (b, l, row) values into the place's columns
  const put = (src: Float64Array, pl: Place, row: number) => {
    const { width, extra = 0 } = lay.bufs[pl.buf];
    for (let bi = 0; bi < b; bi++)
      for (let t = 0; t < l; t++)
        for (let i = 0; i < row; i++) data[pl.buf][(bi * (l + extra) + t) * width + pl.at + i] = src[(bi * l + t) * row + i];
  };
  if (lay.x) put(pr.x, lay.x, H * P);
  put(pr.B, lay.B, G * N);
  put(pr.C, lay.C, G * N);
  if (lay.z && pr.z) put(pr.z, lay.z, H * P);
  if (lay.dt) put(pr.dt, lay.dt, H);
  const bufs: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(lay.bufs))
    bufs[k] = tensor(data[k], [b, l + (v.extra ?? 0), v.width], { dtype: v.dtype ?? dtype, device: 'cuda' });
  // mamba2's split: the buffer seen channels-last (b, width, l), a channel range unflattened and
  // permuted to (b, l, heads or groups, size)
  const split = (pl: Place, sizes: number[]) =>
    bufs[pl.buf].slice(1, 0, l).transpose(1, 2).slice(1, pl.at, pl.at + sizes[0] * sizes[1]).unflatten(1, sizes).permute(0, 3, 1, 2);
  let x: Tensor, dt: Tensor;
  if (lay.xT) {
    // (b, l, P, H) contiguous, seen as (b, l, H, P)
    const xt = new Float64Array(b * l * H * P);
    for (let r = 0; r < b * l; r++) for (let h = 0; h < H; h++) for (let p = 0; p < P; p++) xt[(r * P + p) * H + h] = pr.x[(r * H + h) * P + p];
    x = tensor(xt, [b, l, P, H], { dtype, device: 'cuda' }).transpose(2, 3);
  } else {
    x = split(lay.x!, [H, P]);
  }
  if (lay.dtT) {
    const dtt = new Float64Array(b * H * l);
    for (let bi = 0; bi < b; bi++) for (let t = 0; t < l; t++) for (let h = 0; h < H; h++) dtt[(bi * H + h) * l + t] = pr.dt[(bi * l + t) * H + h];
    dt = tensor(dtt, [b, H, l], { dtype, device: 'cuda' }).transpose(1, 2);
  } else {
    const pl = lay.dt!;
    dt = bufs[pl.buf].slice(1, 0, l).slice(2, pl.at, pl.at + H);
  }
  return { x, B: split(lay.B, [G, N]), C: split(lay.C, [G, N]), z: lay.z && pr.z ? split(lay.z, [H, P]) : undefined, dt };
}

/** The contiguous options of the same values (dt in `dtDtype`). */
function contiguousOptions(pr: SsdRefInputs, dtype: DType, dtDtype: DType): SsdChunkScanOptions {
  const o = ssdTensors(pr, dtype, 'cuda');
  return { ...o, dt: tensor(pr.dt, [pr.batch, pr.seqlen, pr.heads], { dtype: dtDtype, device: 'cuda' }) };
}

/** a as stored in `dtype`. */
function rounded(a: Float64Array, dtype: DType): Float64Array {
  return Float64Array.from(tensor(a, [a.length], { dtype }).dataSync());
}

describeGpu('ssdChunkScan on CUDA with row-strided inputs', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));

  for (const sc of CASES) {
    for (const dtype of sc.dtypes) {
      it(`${dtype}: ${sc.name}`, async () => {
        const pr = makeSsdProblem(sc.c);
        const lay = sc.layout(sc.c);
        const v = stridedOperands(pr, lay, dtype);
        const dtDtype = v.dt.dtype;
        const contig = contiguousOptions(pr, dtype, dtDtype);
        const strided: SsdChunkScanOptions = { ...contig, x: v.x, B: v.B, C: v.C, dt: v.dt, z: v.z };
        // the views are what the case says they are (mamba2's strides where it is mamba2's layout)
        expect(v.x.shape).toEqual([pr.batch, pr.seqlen, pr.heads, pr.headdim]);
        expect(v.B.shape).toEqual([pr.batch, pr.seqlen, pr.groups, pr.dstate]);
        expect(v.dt.shape).toEqual([pr.batch, pr.seqlen, pr.heads]);
        if (!lay.xT) expect(v.x.strides.slice(1)).toEqual([lay.bufs[lay.x!.buf].width, pr.headdim, 1]);
        expect(v.B.strides.slice(1)).toEqual([lay.bufs[lay.B.buf].width, pr.dstate, 1]);

        const a = ssdChunkScan({ ...strided, returnFinalStates: true });
        const copied = ssdLastWorkspaceBytes().forwardInputCopies;
        if (lay.inPlace) expect(copied, 'bytes copied of x, z, B, C, dt (all read in place)').toBe(0);
        else expect(copied, 'bytes copied of x, z, B, C, dt (a fallback)').toBeGreaterThan(0);
        const c = ssdChunkScan({ ...contig, returnFinalStates: true });
        expect(ssdLastWorkspaceBytes().forwardInputCopies, 'contiguous inputs: nothing copied').toBe(0);
        const ya = await values(a.y), fa = await values(a.finalStates!);
        const yc = await values(c.y), fc = await values(c.finalStates!);
        expectNoNaN(ya, 'y (poisoned before the call; NaN padding around the views)');
        expectNoNaN(fa, 'finalStates');
        // the same kernels on the same values
        expect(relErr(ya, yc), 'y against contiguous inputs').toBeLessThanOrEqual(1e-6);
        expect(relErr(fa, fc), 'finalStates against contiguous inputs').toBeLessThanOrEqual(1e-6);
        const ref = ssdReference({ ...roundedTo(pr, dtype), dt: rounded(pr.dt, dtDtype) });
        expectClose(ya, ref.y, TOL[dtype], 'y');
        expectClose(fa, ref.finalStates, TOL[dtype], 'finalStates');
        // inputs untouched (read in place: the op must not write them)
        expect(relErr(await values(v.x), rounded(pr.x, dtype)), 'x after the call').toBe(0);
        expect(relErr(await values(v.B), rounded(pr.B, dtype)), 'B after the call').toBe(0);
        expect(relErr(await values(v.C), rounded(pr.C, dtype)), 'C after the call').toBe(0);
        if (v.z) expect(relErr(await values(v.z), rounded(pr.z!, dtype)), 'z after the call').toBe(0);
        expect(relErr(await values(v.dt), rounded(pr.dt, dtDtype)), 'dt after the call').toBe(0);
      });
    }
  }

  it('the backward (which stages its inputs) given the strided views equals the backward of contiguous copies', async () => {
    const r = rng();
    for (const dtype of ['bfloat16', 'float32'] as DType[]) {
      const c: SsdCase = { batch: 2, seqlen: 300, heads: 4, headdim: 32, dstate: 64, groups: 2, z: true, D: 'head', dtBias: true, initialStates: true, seqStarts: [100] };
      const pr = makeSsdProblem(c, r);
      const v = stridedOperands(pr, mamba2Layout(c, { extra: 3 }), dtype);
      const contig = contiguousOptions(pr, dtype, v.dt.dtype);
      const dy = randnArray(2 * 300 * 4 * 32, r), dfin = randnArray(2 * 4 * 32 * 64, r);
      const ga = await ssdGrads({ ...contig, x: v.x, B: v.B, C: v.C, dt: v.dt, z: v.z }, dy, dfin, dtype, 'cuda');
      const gc = await ssdGrads(contig, dy, dfin, dtype, 'cuda');
      expect(Object.keys(ga).sort()).toEqual(Object.keys(gc).sort());
      for (const k of Object.keys(gc)) {
        expectNoNaN(ga[k], `${dtype} ${k}`);
        expect(relErr(ga[k], gc[k]), `${dtype} ${k} against contiguous inputs`).toBeLessThanOrEqual(1e-6);
      }
    }
  });
});
