/** `lonas doctor` names the compute modes the kernels run in (exact unless an environment variable says otherwise). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuFlags } from '../../src/kernels/index.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const lonas = (args: string[], opts: { env: NodeJS.ProcessEnv }) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: opts.env });

test('doctor reports the INT4 and bf16 compute modes, exact by default and as LONAS_*_COMPUTE set them, and the bf16 GEMM path', () => {
  const env = { ...process.env };
  delete env.LONAS_INT4_COMPUTE;
  delete env.LONAS_BF16_COMPUTE;
  const plain = lonas(['doctor', '--json'], { env });
  assert.equal(plain.status, 0, plain.stderr);
  assert.deepEqual(JSON.parse(plain.stdout).compute, { int4: 'exact', bf16: 'exact' });
  // the bf16 GEMM's path: the best the CPU flags allow (AMX also needs the kernel's XTILEDATA grant, given here)
  const flags = cpuFlags();
  const path = flags.includes('amx_bf16') ? 'amx' : flags.includes('avx512_bf16') ? 'avx512bf16' : 'generic';
  assert.equal(JSON.parse(plain.stdout).bf16Gemm, path);
  const approx = lonas(['doctor'], { env: { ...env, LONAS_INT4_COMPUTE: 'int8-act', LONAS_BF16_COMPUTE: 'bf16-act' } });
  assert.equal(approx.status, 0, approx.stderr);
  assert.match(approx.stdout, /^compute +INT4 int8-act, bf16 bf16-act/m);
  const bad = lonas(['doctor'], { env: { ...env, LONAS_INT4_COMPUTE: 'fast' } });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /LONAS_INT4_COMPUTE='fast' is not a compute mode/);
});
