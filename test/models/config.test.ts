import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generationDefaultsFrom, loadConfig, loadGenerationDefaults, normalizeConfig, parseJsonWithSpecials } from '../../lib/models/config';
import { expectCode } from '../helpers';

const mamba2 = {
  architectures: ['Mamba2ForCausalLM'],
  model_type: 'mamba2',
  vocab_size: 301,
  hidden_size: 48,
  expand: 2,
  num_heads: 12,
  head_dim: 8,
  n_groups: 2,
  state_size: 16,
  num_hidden_layers: 3,
  conv_kernel: 4,
  chunk_size: 8,
  layer_norm_epsilon: 1e-5,
  eos_token_id: 0,
};

describe('config.json', () => {
  it('parses bare Infinity / -Infinity / NaN tokens outside strings only', () => {
    const v = parseJsonWithSpecials('{"a": [0.0, Infinity], "b": -Infinity, "c": NaN, "s": "Infinity NaN", "t": "say \\"Infinity\\""}') as Record<string, unknown>;
    expect(v.a).toEqual([0, Infinity]);
    expect(v.b).toBe(-Infinity);
    expect(Number.isNaN(v.c)).toBe(true);
    expect(v.s).toBe('Infinity NaN');
    expect(v.t).toBe('say "Infinity"');
  });

  it('parses {"__float__": ...} objects', () => {
    const v = parseJsonWithSpecials('{"lim": [{"__float__": "0.5"}, {"__float__": "Infinity"}], "n": {"__float__": "-Infinity"}}') as Record<string, unknown>;
    expect(v.lim).toEqual([0.5, Infinity]);
    expect(v.n).toBe(-Infinity);
    expectCode(() => parseJsonWithSpecials('{"x": {"__float__": "abc"}}'), 'ERR_FORMAT', '__float__');
    expectCode(() => parseJsonWithSpecials('{"x": Infinit}'), 'ERR_FORMAT', 'not valid JSON');
    expectCode(() => parseJsonWithSpecials('{"x": xInfinity}'), 'ERR_FORMAT');
  });

  it('loads time_step_limit written by Python (bare Infinity) and as __float__', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-cfg-'));
    const text = JSON.stringify({ ...mamba2, time_step_limit: [0.0, 1] }, null, 2).replace('1\n', 'Infinity\n');
    expect(text).toContain('Infinity');
    fs.writeFileSync(path.join(dir, 'config.json'), text);
    const c = loadConfig(dir);
    expect(c.architecture).toBe('mamba2');
    expect(c.timeStepLimit).toBeNull(); // (0, inf) is the no-op default
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...mamba2, time_step_limit: [0.01, { __float__: 'Infinity' }] }));
    expect(loadConfig(dir).timeStepLimit).toEqual([0.01, Infinity]);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...mamba2, time_step_limit: [0.05, 0.6] }));
    expect(loadConfig(dir).timeStepLimit).toEqual([0.05, 0.6]);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": ["Mamba2ForCausalLM"], ');
    expectCode(() => loadConfig(dir), 'ERR_FORMAT', 'config.json');
    fs.rmSync(dir, { recursive: true });
    expectCode(() => loadConfig(dir), 'ERR_FORMAT', 'cannot read');
  });

  it('normalises Mamba, falcon-mamba and Mamba-2 configs', () => {
    const m = normalizeConfig({ architectures: ['MambaForCausalLM'], vocab_size: 50280, hidden_size: 768, state_size: 16, num_hidden_layers: 24 });
    expect(m).toMatchObject({ architecture: 'mamba', intermediateSize: 1536, timeStepRank: 48, convKernel: 4, tieWordEmbeddings: true, mixerRmsEps: null });
    const f = normalizeConfig({ model_type: 'falcon_mamba', vocab_size: 10, hidden_size: 40, state_size: 12, num_hidden_layers: 2, mixer_rms_eps: 1e-6, time_step_rank: 5 });
    expect(f).toMatchObject({ architecture: 'mamba', className: 'FalconMambaForCausalLM', mixerRmsEps: 1e-6, timeStepRank: 5 });
    const m2 = normalizeConfig(mamba2);
    expect(m2).toMatchObject({ architecture: 'mamba2', intermediateSize: 96, numHeads: 12, headDim: 8, nGroups: 2, tieWordEmbeddings: false });
  });

  it('rejects inconsistent or unsupported configs with ERR_FORMAT', () => {
    expectCode(() => normalizeConfig({ ...mamba2, head_dim: 7 }), 'ERR_FORMAT', 'num_heads * head_dim');
    expectCode(() => normalizeConfig({ ...mamba2, n_groups: 5 }), 'ERR_FORMAT', 'n_groups');
    expectCode(() => normalizeConfig({ ...mamba2, hidden_size: -3 }), 'ERR_FORMAT', 'hidden_size');
    expectCode(() => normalizeConfig({ ...mamba2, time_step_limit: [1, 0] }), 'ERR_FORMAT', 'time_step_limit');
    expectCode(() => normalizeConfig({ ...mamba2, hidden_act: 'gelu' }), 'ERR_FORMAT', 'hidden_act');
    expectCode(() => normalizeConfig({ architectures: ['LlamaForCausalLM'] }), 'ERR_FORMAT', 'unsupported model');
  });

  it('takes generation defaults from generation_config.json', () => {
    const cfg = normalizeConfig(mamba2);
    expect(generationDefaultsFrom({}, cfg)).toEqual({ maxNewTokens: 128, temperature: 0, topK: 0, topP: 1, stop: [0] });
    expect(generationDefaultsFrom({ do_sample: true, temperature: 0.7, top_p: 0.9, eos_token_id: [2, 5], max_new_tokens: 9 }, cfg)).toEqual({
      maxNewTokens: 9,
      temperature: 0.7,
      topK: 50,
      topP: 0.9,
      stop: [2, 5],
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-gen-'));
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 7 }));
    expect(loadGenerationDefaults(dir, cfg).stop).toEqual([7]);
    fs.rmSync(dir, { recursive: true });
  });
});
