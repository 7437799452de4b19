#!/usr/bin/env node
// lonas runs its TypeScript sources through tsx (no separate compile step to forget).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
