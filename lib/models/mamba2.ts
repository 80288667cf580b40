/**
 * Mamba-2 language model, as transformers' Mamba2ForCausalLM.
 *
 * Mixer, per layer (I = intermediate = heads·headdim, G groups, N state, H heads):
 *   [_, _, z, xBC, dt] = in_proj(h)              (…, 2·d_mlp + I + (I + 2GN) + H); d_mlp is 0 in
 *                                                 released checkpoints and ignored, as transformers does
 *   xBC = silu(causal_conv1d(xBC) + conv bias)
 *   [x, B, C] = xBC                              x (…, H, headdim), B/C (…, G, N)
 *   y = SSD(x, dt' = clamp(softplus(dt + dt_bias), time_step_limit), A = -exp(A_log), B, C, D)
 *   y = rmsnorm_grouped(y · silu(z)) · norm.weight   (groups of I/G channels)
 *   out = out_proj(y)
 */
import { Tensor, tensor } from '../tensor';
import { normalizeDevice } from '../device';
import { devices } from '../runtime';
import { ModelInit, CausalLM, LayerState } from './lm';
import { causalConv1d, copyInto, gatedRmsNorm, linear, linearConvUpdate, selectiveStateUpdate, ssdChunkScan } from './ops';
import { WeightSource } from './weights';

interface Mamba2Layer {
  inProj: Tensor;
  inProjBias?: Tensor;
  convW: Tensor;
  convB?: Tensor;
  dtBias: Tensor;
  A: Tensor;
  D: Tensor;
  normW: Tensor;
  outProj: Tensor;
  outProjBias?: Tensor;
}

export class Mamba2Model extends CausalLM {
  private layers: Mamba2Layer[] = [];
  private projSize = 0;
  private dMlp = 0;

  static create(init: ModelInit, w: WeightSource): Promise<Mamba2Model> {
    return CausalLM.withWeights(new Mamba2Model(init), w);
  }

  protected get convDim(): number {
    const c = this.config;
    return c.intermediateSize + 2 * c.nGroups * c.stateSize;
  }
  protected get ssmShape(): number[] {
    return [this.config.numHeads, this.config.headDim, this.config.stateSize];
  }

  protected async loadMixers(w: WeightSource): Promise<void> {
    if (this.device !== 'cpu') {
      const d = normalizeDevice(this.device);
      this.sm90 = Number(devices().find((i) => i.device === d)?.computeCapability ?? 0) >= 9;
    }
    const c = this.config;
    const { hiddenSize: Hd, intermediateSize: I, numHeads: H, convKernel: K } = c;
    const dt = this.dtype, dev = this.device;
    this.projSize = I + this.convDim + H;
    // A checkpoint whose in_proj is wider carries the (unused) d_mlp parts first.
    const stored = w.shapeOf('backbone.layers.0.mixer.in_proj.weight')?.[0];
    if (stored !== undefined && stored > this.projSize && (stored - this.projSize) % 2 === 0) {
      this.dMlp = (stored - this.projSize) / 2;
      this.projSize = stored;
    }
    for (let l = 0; l < c.numLayers; l++) {
      const p = `backbone.layers.${l}.mixer.`;
      const get = async (name: string, shape: number[], dtype = dt) => this.own(await w.load(p + name, shape, dtype, dev));
      const Alog = await w.loadHost(p + 'A_log', [H]);
      this.layers.push({
        inProj: await get('in_proj.weight', [this.projSize, Hd]),
        inProjBias: c.useBias ? await get('in_proj.bias', [this.projSize]) : undefined,
        convW: await get('conv1d.weight', [this.convDim, K]),
        convB: c.useConvBias ? await get('conv1d.bias', [this.convDim]) : undefined,
        dtBias: await get('dt_bias', [H], 'float32'),
        A: this.own(tensor(Float32Array.from(Alog, (v) => -Math.exp(v)), [H], { device: dev })),
        D: await get('D', [H], 'float32'),
        normW: await get('norm.weight', [I]),
        outProj: await get('out_proj.weight', [Hd, I]),
        outProjBias: c.useBias ? await get('out_proj.bias', [Hd]) : undefined,
      });
    }
  }

  /** Offsets of z, xBC and dt in in_proj's output. */
  private get offsets(): { z: number; xbc: number; dt: number } {
    const z = 2 * this.dMlp;
    const xbc = z + this.config.intermediateSize;
    return { z, xbc, dt: xbc + this.convDim };
  }

  protected mixerForward(layer: number, x: Tensor, init?: LayerState, into?: LayerState): Tensor {
    const Ly = this.layers[layer];
    const { intermediateSize: I, numHeads: H, headDim: P, nGroups: G, stateSize: N } = this.config;
    const [b, l] = [x.shape[0], x.shape[1]];
    const o = this.offsets;
    // Views throughout. On CUDA the conv reads its slice in place (channels-last) and returns y
    // channels-last, the gated norm reads z in place, and SSD reads x/B/C (row-strided views of
    // the conv output, token stride convDim) and dt (in the model's dtype, token stride the in_proj width) in
    // place, without copies; on the CPU the ops copy strided inputs to contiguous memory.
    const proj = linear({ x, weight: Ly.inProj, bias: Ly.inProjBias }); // (b, l, proj)
    const z = proj.slice(2, o.z, o.z + I);
    const xbc = proj.slice(2, o.xbc, o.dt).transpose(1, 2); // (b, convDim, l)
    const dt = proj.slice(2, o.dt, o.dt + H); // (b, l, H)
    const conv = causalConv1d({ x: xbc, weight: Ly.convW, bias: Ly.convB, activation: 'silu', initialStates: init?.conv, finalStatesOut: into?.conv });
    // (b, channels, l) → (b, l, heads or groups, size), as views of the conv output
    const split = (from: number, sizes: number[]) => conv.y.slice(1, from, from + sizes.reduce((a, b) => a * b, 1)).unflatten(1, sizes).permute(0, 3, 1, 2);
    const ssd = ssdChunkScan({
      x: split(0, [H, P]),
      dt,
      A: Ly.A,
      B: split(I, [G, N]),
      C: split(I + G * N, [G, N]),
      chunkSize: this.config.chunkSize,
      D: Ly.D,
      dtBias: Ly.dtBias,
      dtSoftplus: true,
      dtLimit: this.config.timeStepLimit ?? undefined,
      initialStates: init?.ssm,
      returnFinalStates: into !== undefined,
    });
    if (into) copyInto(into.ssm, ssd.finalStates as Tensor);
    const y = gatedRmsNorm({ x: ssd.y.reshape([b, l, I]), z, weight: Ly.normW, eps: this.config.normEps, groupSize: I / G });
    return linear({ x: y, weight: Ly.outProj, bias: Ly.outProjBias });
  }

  /** sm_90 or later: where the weight-streaming kernel (and so the gated out_proj) runs (read at load). */
  private sm90 = false;

  /**
   * Whether a batch-1 step computes z (in_proj's z columns) on the second stream beside the state
   * update, out_proj then applying the gate with its norm (linearConvUpdate's restOnSide): on CUDA
   * where out_proj streams its weights and gates on the fly (sm_90+, 16-bit, over 8 MB, the
   * streaming kernel not turned off), the shapes where it was measured to pay (mamba2-2.7b: -0.03
   * ms a token); elsewhere the gated out_proj would run as separate kernels. STATESPACE_Z_BESIDE=0
   * / =1 (read at each step, i.e. when a decode graph is captured) turns it off / on for any shape.
   */
  private zBesideUpdate(outProj: Tensor): boolean {
    const v = process.env.STATESPACE_Z_BESIDE;
    if (v === '0' || this.device === 'cpu') return false;
    if (v === '1') return true;
    if (process.env.STATESPACE_GEMV_STREAM === '0') return false;
    return this.sm90 && outProj.dtype !== 'float32' && outProj.size * 2 > 8 << 20;
  }

  protected mixerStep(layer: number, x: Tensor, conv: Tensor, ssm: Tensor, block = false): Tensor {
    const Ly = this.layers[layer];
    const { intermediateSize: I, numHeads: H, headDim: P, nGroups: G, stateSize: N } = this.config;
    const n = x.shape[0];
    const o = this.offsets;
    // in_proj with the conv step fused onto its xBC columns
    const norm = block ? { normWeight: this.norms[layer], normEps: this.config.normEps } : {};
    const zBeside = block && G === 1 && n === 1 && this.zBesideUpdate(Ly.outProj);
    const proj = linearConvUpdate({ x, ...norm, weight: Ly.inProj, bias: Ly.inProjBias, convState: conv, convWeight: Ly.convW, convBias: Ly.convB, convStart: o.xbc, activation: 'silu', restOnSide: zBeside }); // (n, proj)
    const z = proj.slice(1, o.z, o.z + I);
    const xbc = proj.slice(1, o.xbc, o.dt); // (n, convDim), after the conv
    const dt = proj.slice(1, o.dt, o.dt + H); // (n, H)
    const xs = xbc.slice(1, 0, H * P).unflatten(1, [H, P]);
    const B = xbc.slice(1, I, I + G * N).unflatten(1, [G, N]);
    const C = xbc.slice(1, I + G * N, I + 2 * G * N).unflatten(1, [G, N]);
    const limit = this.config.timeStepLimit ?? undefined;
    // out_proj streams its weights while the latency-bound state update runs (streamWeights)
    const out = { weight: Ly.outProj, bias: Ly.outProjBias, residual: block ? x : undefined, streamWeights: true };
    const ssu = { state: ssm, x: xs, dt, A: Ly.A, B, C, D: Ly.D, dtBias: Ly.dtBias, dtSoftplus: true, dtLimit: limit };
    if (zBeside) {
      // z, computed on the second stream while the update runs, gates out_proj's row as it is
      // normalised (the same kernel on CUDA, which joins that stream first)
      const y = selectiveStateUpdate(ssu);
      return linear({ x: y.reshape([n, I]), normWeight: Ly.normW, normGate: z, normEps: this.config.normEps, ...out });
    }
    if (block && G === 1) {
      // One group: the state update applies the gate (y · silu(z), once per element) and out_proj
      // normalises its row on the fly (on CUDA in the same kernel): no gated-norm kernel
      const yz = selectiveStateUpdate({ ...ssu, z: z.unflatten(1, [H, P]) });
      return linear({ x: yz.reshape([n, I]), normWeight: Ly.normW, normEps: this.config.normEps, ...out });
    }
    const y = selectiveStateUpdate(ssu);
    const yn = gatedRmsNorm({ x: y.reshape([n, I]), z, weight: Ly.normW, eps: this.config.normEps, groupSize: I / G });
    return linear({ x: yn, ...out });
  }
}
