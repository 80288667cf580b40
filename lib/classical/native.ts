/** Typed access to the classical toolkit's native functions (csrc/binding/classical_binding.cc). */
import { NativeTensor, native } from '../native';
import { Tensor } from '../tensor';

type T = Tensor | undefined;

export interface ClassicalNative {
  classicalDiscretize(o: { A: Tensor; B: Tensor; dt: number; method?: string; diagonal?: boolean; complex?: boolean }): {
    Ad: NativeTensor;
    Bd: NativeTensor;
  };
  classicalHippo(kind: string, n: number, dtype: string): { A: NativeTensor; B: NativeTensor };
  classicalNplr(kind: string, n: number, dtype: string): { Lambda: NativeTensor; P: NativeTensor; B: NativeTensor; V: NativeTensor };
  classicalS4dInit(kind: string, n: number, dtype: string): { Lambda: NativeTensor; B: NativeTensor };
  classicalSimulate(o: { A: Tensor; B: Tensor; C: Tensor; D: T; u: Tensor; x0: T }): { y: NativeTensor; state: NativeTensor };
  classicalKernel(o: { A: Tensor; B: Tensor; C: Tensor; L: number }): NativeTensor;
  classicalConvolve(o: { u: Tensor; K: Tensor; D: T }): NativeTensor;
  classicalS4dKernel(o: { Lambda: Tensor; B: T; C: Tensor; dt: number | Tensor; L: number; method?: string; conjugate?: boolean }): NativeTensor;
  classicalS4Kernel(o: { Lambda: Tensor; P: Tensor; B: Tensor; C: Tensor; dt: number | Tensor; L: number; conjugate?: boolean }): NativeTensor;
  classicalKalman(
    o: { A: Tensor; B: T; C: Tensor; Q: Tensor; R: Tensor; x0: Tensor; P0: Tensor; u: T; z: Tensor },
    smooth: boolean,
  ): { means: NativeTensor; covs: NativeTensor; logLik: NativeTensor };
}

export const cn = native as unknown as ClassicalNative;

/** Wraps a native descriptor as a Tensor. */
export const wrap = (t: NativeTensor): Tensor => new Tensor(t);
