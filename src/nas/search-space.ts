/**
 * Search spaces: which sizes of the super-network are elastic, as a list of groups. A group names modules
 * (per layer, or shared across layers) and a descending list of choices; a sub-network configuration picks
 * one choice per group (src/nas/subnet.ts).
 *
 * File format (validated, errors name the field):
 *   { "groups": [ { "kind": "rank" | "mlp_width" | "heads",
 *                   "modules": ["q_proj", "k_proj", "v_proj"],      // rank groups only
 *                   "share": "layer" | "all",                       // one group per layer (default) or one for all
 *                   "layers": [0, 1, …],                            // optional subset (default: every layer)
 *                   "fractions": [1, 0.875] | "choices": [32, 28] } ] }  // relative to the full size, or absolute
 * Fractions scale to the model: rank × LoRA rank, mlp_width × the layer's intermediate size, heads × the
 * layer's query heads (rounded to whole GQA groups).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { LlamaConfig } from '../models/llama/config.ts';
import { PROJECTIONS } from '../models/llama/model.ts';

export type GroupKind = 'rank' | 'mlp_width' | 'heads';

const groupSchema = z
  .object({
    kind: z.enum(['rank', 'mlp_width', 'heads']),
    modules: z.array(z.enum(PROJECTIONS)).min(1).optional(),
    share: z.enum(['layer', 'all']).default('layer'),
    layers: z.array(z.number().int().nonnegative()).min(1).optional(),
    fractions: z.array(z.number().positive().max(1)).min(1).optional(),
    choices: z.array(z.number().int().positive()).min(1).optional(),
  })
  .strict()
  .superRefine((g, ctx) => {
    if ((g.fractions === undefined) === (g.choices === undefined))
      ctx.addIssue({ code: 'custom', message: 'give exactly one of "fractions" or "choices"' });
    if (g.kind === 'rank' && !g.modules)
      ctx.addIssue({ code: 'custom', path: ['modules'], message: 'rank groups need "modules" (e.g. ["q_proj", "k_proj", "v_proj"])' });
    if (g.kind !== 'rank' && g.modules)
      ctx.addIssue({ code: 'custom', path: ['modules'], message: `${g.kind} groups act on fixed modules; remove "modules"` });
  });

export const searchSpaceSchema = z.object({ groups: z.array(groupSchema) }).strict();
export type SearchSpaceSpec = z.infer<typeof searchSpaceSchema>;

export const PRESETS: Record<'lonas' | 'nls' | 'none', SearchSpaceSpec> = {
  // LoNAS reference LLaMA space: q,k,v share a rank; MLP width 100–50 %; gate+up share a rank; down fixed.
  lonas: {
    groups: [
      { kind: 'rank', modules: ['q_proj', 'k_proj', 'v_proj'], share: 'layer', fractions: [1, 0.875] },
      { kind: 'mlp_width', share: 'layer', fractions: [1, 0.875, 0.75, 0.625, 0.5] },
      { kind: 'rank', modules: ['gate_proj', 'up_proj'], share: 'layer', fractions: [1, 0.875] },
    ],
  },
  // Shears/SQFT Neural Low-rank adapter Search: ranks 32/24/16 of 32 on [q,k,v], [up], [down].
  nls: {
    groups: [
      { kind: 'rank', modules: ['q_proj', 'k_proj', 'v_proj'], share: 'layer', fractions: [1, 0.75, 0.5] },
      { kind: 'rank', modules: ['up_proj'], share: 'layer', fractions: [1, 0.75, 0.5] },
      { kind: 'rank', modules: ['down_proj'], share: 'layer', fractions: [1, 0.75, 0.5] },
    ],
  },
  none: { groups: [] },
};

/** A group made concrete for one model: absolute choices, largest first. */
export interface ResolvedGroup {
  id: string;
  kind: GroupKind;
  layers: number[];
  /** rank groups: the projections whose adapters share the rank */
  modules: string[];
  choices: number[];
}

export interface SearchSpace {
  groups: ResolvedGroup[];
  /** the spec it was resolved from (saved with adapters) */
  spec: SearchSpaceSpec;
}

export function parseSearchSpace(json: unknown, source: string): SearchSpaceSpec {
  const r = searchSpaceSchema.safeParse(json);
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `field "${i.path.join('.') || '(root)'}": ${i.message}`);
    throw new Error(`${source}: invalid search space: ${msgs.join('; ')}`);
  }
  return r.data;
}

/** `lonas`, `nls`, `none`, or a JSON file path. */
export function loadSearchSpaceSpec(nameOrFile: string): SearchSpaceSpec {
  if (nameOrFile in PRESETS) return PRESETS[nameOrFile as keyof typeof PRESETS];
  let text: string;
  try {
    text = readFileSync(nameOrFile, 'utf8');
  } catch {
    throw new Error(`--space ${nameOrFile}: not a preset (${Object.keys(PRESETS).join(', ')}) and not a readable file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${nameOrFile}: not valid JSON (${(e as Error).message})`);
  }
  return parseSearchSpace(json, nameOrFile);
}

/**
 * Resolves a spec against a model config and LoRA rank into concrete groups. With `targets` (the modules
 * that have adapters), rank groups keep only those modules, and a rank group left with none is dropped.
 */
export function resolveSearchSpace(spec: SearchSpaceSpec, config: LlamaConfig, loraRank: number, targets?: readonly string[]): SearchSpace {
  const nLayers = config.layers.length;
  const groups: ResolvedGroup[] = [];
  spec.groups.forEach((g, gi) => {
    const modules = g.modules && targets ? g.modules.filter((m) => targets.includes(m)) : g.modules;
    if (modules && modules.length === 0) return;
    const layers = g.layers ?? Array.from({ length: nLayers }, (_, i) => i);
    for (const l of layers)
      if (l >= nLayers) throw new Error(`search space group ${gi}: layer ${l} does not exist (the model has ${nLayers})`);
    const sets = g.share === 'all' ? [layers] : layers.map((l) => [l]);
    for (const ls of sets) {
      const full = fullSize(g.kind, ls, config, loraRank, gi);
      const raw = g.choices ?? g.fractions!.map((f) => roundChoice(g.kind, f * full, ls, config));
      const choices = [...new Set(raw)].sort((a, b) => b - a);
      for (const c of choices) {
        if (c > full) throw new Error(`search space group ${gi}: choice ${c} exceeds the full ${g.kind} ${full}`);
        if (g.kind === 'heads') checkHeads(c, ls, config, gi);
      }
      const where = g.share === 'all' ? 'all' : `layers.${ls[0]}`;
      const what = g.kind === 'rank' ? `rank.${modules!.join('+')}` : g.kind;
      groups.push({ id: `${where}.${what}`, kind: g.kind, layers: ls, modules: modules ?? [], choices });
    }
  });
  const ids = new Set<string>();
  for (const g of groups) {
    if (ids.has(g.id))
      throw new Error(`search space: two groups resolve to the same id "${g.id}"; a module's size may belong to one group only`);
    ids.add(g.id);
  }
  return { groups, spec };
}

function fullSize(kind: GroupKind, layers: number[], c: LlamaConfig, rank: number, gi: number): number {
  if (kind === 'rank') return rank;
  const sizes = layers.map((l) => (kind === 'mlp_width' ? c.layers[l].intermediateSize : c.layers[l].numHeads));
  if (new Set(sizes).size > 1)
    throw new Error(
      `search space group ${gi}: shared across layers of different ${kind} sizes (${sizes.join(', ')}); use "share": "layer"`,
    );
  return sizes[0];
}

function roundChoice(kind: GroupKind, v: number, layers: number[], c: LlamaConfig): number {
  if (kind !== 'heads') return Math.max(1, Math.round(v));
  const group = c.layers[layers[0]].numHeads / c.layers[layers[0]].numKvHeads;
  return Math.max(group, Math.round(v / group) * group); // whole GQA groups
}

function checkHeads(h: number, layers: number[], c: LlamaConfig, gi: number): void {
  for (const l of layers) {
    const group = c.layers[l].numHeads / c.layers[l].numKvHeads;
    if (h % group !== 0)
      throw new Error(`search space group ${gi}: ${h} query heads is not a whole number of GQA groups of ${group} (layer ${l})`);
  }
}
