/** `lonas doctor` reports the optional MPI binding. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lonas } from './mpirun.ts';
import { mpiBindingPath } from '../../src/dist/mpi.ts';

test('doctor reports whether the MPI binding is built, and its MPI library when it is', () => {
  const r = lonas('doctor', '--json');
  assert.equal(r.status, 0, r.stderr);
  const { mpi } = JSON.parse(r.stdout);
  assert.equal(mpi.path, mpiBindingPath());
  assert.equal(mpi.built, existsSync(mpiBindingPath()));
  if (mpi.built) assert.match(mpi.library, /MPI/);
  const text = lonas('doctor');
  assert.match(text.stdout, mpi.built ? /^mpi +binding built \(.*MPI.*\)/m : /^mpi +binding not built \(optional/m);
});
