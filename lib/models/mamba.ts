/**
 * Mamba (Mamba-1) language model, as transformers' MambaForCausalLM / FalconMambaForCausalLM.
 *
 * Mixer, per layer (I = intermediate size, N = state size, R = dt rank):
 *   [x, z] = in_proj(h)                          (…, 2I)
 *   x = silu(causal_conv1d(x) + conv bias)       depthwise, width conv_kernel
 *   [dt, B, C] = x_proj(x)                       (…, R + 2N)
 *   (falcon-mamba: dt, B, C each RMS-normalised without weights, eps mixer_rms_eps)
 *   dt = dt_proj.weight · dt                     (…, I); dt_proj.bias is the scan's delta bias
 *   y = selective_scan(x, softplus(dt + bias), A = -exp(A_log), B, C, D) · silu(z)
 *   out = out_proj(y)
 */
import { Tensor, tensor, ones } from '../tensor';
import { ModelInit, CausalLM, LayerState } from './lm';
import { causalConv1d, copyInto, linear, linearConvUpdate, linearConvUpdateProj, rmsNorm, selectiveScan, selectiveStateUpdate } from './ops';
import { WeightSource } from './weights';

interface MambaLayer {
  inProj: Tensor;
  inProjBias?: Tensor;
  convW: Tensor;
  convB?: Tensor;
  xProj: Tensor;
  dtProjW: Tensor;
  dtProjB: Tensor;
  A: Tensor;
  D: Tensor;
  outProj: Tensor;
  outProjBias?: Tensor;
}

export class MambaModel extends CausalLM {
  private layers: MambaLayer[] = [];
  /** Weightless RMSNorm of falcon-mamba: unit weights of the dt-rank and state sizes. */
  private unitR?: Tensor;
  private unitN?: Tensor;

  static create(init: ModelInit, w: WeightSource): Promise<MambaModel> {
    return CausalLM.withWeights(new MambaModel(init), w);
  }

  protected get convDim(): number {
    return this.config.intermediateSize;
  }
  protected get ssmShape(): number[] {
    return [this.config.intermediateSize, this.config.stateSize];
  }

  protected async loadMixers(w: WeightSource): Promise<void> {
    const { hiddenSize: H, intermediateSize: I, stateSize: N, timeStepRank: R, convKernel: K } = this.config;
    const dt = this.dtype, dev = this.device;
    for (let l = 0; l < this.config.numLayers; l++) {
      const p = `backbone.layers.${l}.mixer.`;
      const get = async (name: string, shape: number[], dtype = dt) => this.own(await w.load(p + name, shape, dtype, dev));
      // A = -exp(A_log) once, on the host in float32 (as transformers: -torch.exp(A_log.float())).
      const Alog = await w.loadHost(p + 'A_log', [I, N]);
      const A = this.own(tensor(Float32Array.from(Alog, (v) => -Math.exp(v)), [I, N], { device: dev }));
      this.layers.push({
        inProj: await get('in_proj.weight', [2 * I, H]),
        inProjBias: this.config.useBias ? await get('in_proj.bias', [2 * I]) : undefined,
        convW: await get('conv1d.weight', [I, K]),
        convB: this.config.useConvBias ? await get('conv1d.bias', [I]) : undefined,
        xProj: await get('x_proj.weight', [R + 2 * N, I]),
        dtProjW: await get('dt_proj.weight', [I, R]),
        dtProjB: await get('dt_proj.bias', [I], 'float32'),
        A,
        D: await get('D', [I], 'float32'),
        outProj: await get('out_proj.weight', [H, I]),
        outProjBias: this.config.useBias ? await get('out_proj.bias', [H]) : undefined,
      });
    }
    if (this.config.mixerRmsEps !== null) {
      this.unitR = this.own(ones([R], { dtype: dt, device: dev }));
      this.unitN = this.own(ones([N], { dtype: dt, device: dev }));
    }
  }

  /** dt, B, C from x_proj's output (…, R + 2N) along the last dimension (views). */
  private splitDbc(xdbl: Tensor): [Tensor, Tensor, Tensor] {
    const { timeStepRank: R, stateSize: N, mixerRmsEps: eps } = this.config;
    const last = xdbl.ndim - 1;
    let dt = xdbl.slice(last, 0, R);
    let B = xdbl.slice(last, R, R + N);
    let C = xdbl.slice(last, R + N, R + 2 * N);
    if (eps !== null) {
      dt = rmsNorm({ x: dt, weight: this.unitR as Tensor, eps }).y;
      B = rmsNorm({ x: B, weight: this.unitN as Tensor, eps }).y;
      C = rmsNorm({ x: C, weight: this.unitN as Tensor, eps }).y;
    }
    return [dt, B, C];
  }

  protected mixerForward(layer: number, x: Tensor, init?: LayerState, into?: LayerState): Tensor {
    const L = this.layers[layer];
    const I = this.config.intermediateSize;
    const b = x.shape[0];
    // The conv and the scan take (batch, channels, seqlen). For one sequence without projection
    // biases, the projections run channel-major (W · aᵀ: the activations as linear's second
    // operand, read through transposed views), which yields that layout directly: u, the scan's
    // B/C and delta need no transposing copies (on CUDA with cuBLAS, linear reads the views in
    // place; elsewhere it copies them). Otherwise views of the (batch, seqlen, channels)
    // products, which the ops copy natively.
    const channelMajor = b === 1 && L.inProjBias === undefined;
    let xs: Tensor, z: Tensor;
    if (channelMajor) {
      const xzT = linear({ x: L.inProj, weight: x.squeeze(0) }); // (2I, l)
      xs = xzT.slice(0, 0, I).unflatten(0, [1, I]); // (1, I, l)
      z = xzT.slice(0, I, 2 * I).unflatten(0, [1, I]);
    } else {
      const xz = linear({ x, weight: L.inProj, bias: L.inProjBias }); // (b, l, 2I)
      xs = xz.slice(2, 0, I).transpose(1, 2); // (b, I, l)
      z = xz.slice(2, I, 2 * I).transpose(1, 2);
    }
    const conv = causalConv1d({ x: xs, weight: L.convW, bias: L.convB, activation: 'silu', initialStates: init?.conv, finalStatesOut: into?.conv });
    const u = conv.y; // (b, I, l)
    let delta: Tensor, B: Tensor, C: Tensor; // (b, I, l), (b, N, l), (b, N, l)
    if (channelMajor && this.config.mixerRmsEps === null) {
      const { timeStepRank: R, stateSize: N } = this.config;
      const xdblT = linear({ x: L.xProj, weight: u.squeeze(0).transpose(0, 1) }); // (R+2N, l)
      B = xdblT.slice(0, R, R + N).unflatten(0, [1, N]);
      C = xdblT.slice(0, R + N, R + 2 * N).unflatten(0, [1, N]);
      delta = linear({ x: L.dtProjW, weight: xdblT.slice(0, 0, R).transpose(0, 1) }).unflatten(0, [1, I]);
    } else {
      const [dtr, Bs, Cs] = this.splitDbc(linear({ x: u.transpose(1, 2), weight: L.xProj })); // (b, l, ·)
      B = Bs.transpose(1, 2);
      C = Cs.transpose(1, 2);
      delta = channelMajor
        ? linear({ x: L.dtProjW, weight: dtr.squeeze(0) }).unflatten(0, [1, I]) // (1, I, l)
        : linear({ x: dtr, weight: L.dtProjW }).transpose(1, 2); // (b, I, l)
    }
    // The scan's state is float32: it writes a float32 slot in place, a bfloat16 one takes a narrowing copy.
    const direct = into?.ssm.dtype === 'float32';
    const scan = selectiveScan({
      u,
      delta,
      A: L.A,
      B,
      C,
      D: L.D,
      z,
      deltaBias: L.dtProjB,
      deltaSoftplus: true,
      initialState: init?.ssm,
      lastStateOut: direct ? into?.ssm : undefined,
      returnLastState: into !== undefined && !direct,
    });
    if (into && !direct) copyInto(into.ssm, scan.lastState as Tensor);
    return linear({ x: scan.y.transpose(1, 2), weight: L.outProj, bias: L.outProjBias });
  }

  protected mixerStep(layer: number, x: Tensor, conv: Tensor, ssm: Tensor, block = false): Tensor {
    const L = this.layers[layer];
    const I = this.config.intermediateSize;
    // in_proj with the conv step fused onto its x columns: [u | z], u = silu(conv(x))
    const norm = block ? { normWeight: this.norms[layer], normEps: this.config.normEps } : {};
    const args = { x, ...norm, weight: L.inProj, bias: L.inProjBias, convState: conv, convWeight: L.convW, convBias: L.convB, convStart: 0, activation: 'silu' as const };
    // Batched (past the matrix-vector kernels' 8 rows; the batch-1 block form, whose x is the float32
    // residual stream, stays on linearConvUpdate): x_proj in the same op, which on CUDA computes z
    // on a second stream beside the rest
    let uz: Tensor, xdbl: Tensor | undefined;
    if (x.shape[0] > 8) [uz, xdbl] = linearConvUpdateProj({ ...args, xProj: L.xProj });
    else uz = linearConvUpdate(args);
    const u = uz.slice(1, 0, I); // (n, I)
    const z = uz.slice(1, I, 2 * I);
    const [dtr, B, C] = this.splitDbc(xdbl ?? linear({ x: u, weight: L.xProj }));
    // dt_proj runs inside the state update (on CUDA for small batches, in the same kernel). After
    // linearConvUpdateProj (and falcon-mamba's dt/B/C norms), none of whose kernels writes the SSM
    // state, the batched update may read its state before they finish (readStateEarly).
    const y = selectiveStateUpdate({ state: ssm, x: u, dt: dtr, dtProj: L.dtProjW, A: L.A, B, C, D: L.D, z, dtBias: L.dtProjB, dtSoftplus: true, readStateEarly: xdbl !== undefined });
    // out_proj streams its weights while the latency-bound state update runs (streamWeights)
    return linear({ x: y, weight: L.outProj, bias: L.outProjBias, residual: block ? x : undefined, streamWeights: true });
  }
}
