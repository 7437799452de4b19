/**
 * Sub-network configurations: plain data `{ groupId: value }`, one choice per search-space group.
 * Applying one sets the active sizes of the model's modules explicitly (no hidden random state).
 */
import { readFileSync } from 'node:fs';
import type { Rng } from '../tensor/rng.ts';
import { LoraLinear } from '../adapters/lora.ts';
import { ElasticLinear } from '../adapters/elastic.ts';
import { Linear } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import type { SearchSpace } from './search-space.ts';
import type { LayerSizes, LlamaConfig } from '../models/llama/config.ts';

export type SubnetConfig = Record<string, number>;
export const NAMED_SUBNETS = ['maximal', 'heuristic', 'minimal'] as const;
export type NamedSubnet = (typeof NAMED_SUBNETS)[number];

/** maximal = first choice, minimal = last, heuristic = the median choices[⌊(n−1)/2⌋] of every group. */
export function namedSubnet(space: SearchSpace, name: NamedSubnet): SubnetConfig {
  const pick = (c: number[]) => (name === 'maximal' ? c[0] : name === 'minimal' ? c[c.length - 1] : c[Math.floor((c.length - 1) / 2)]);
  return Object.fromEntries(space.groups.map((g) => [g.id, pick(g.choices)]));
}

/** Each group independently and uniformly from its choices. */
export function sampleSubnet(space: SearchSpace, rng: Rng): SubnetConfig {
  return Object.fromEntries(space.groups.map((g) => [g.id, g.choices[rng.int(g.choices.length)]]));
}

/** A named configuration or a JSON file `{ groupId: value }`, validated against the space. */
export function resolveSubnetSpec(space: SearchSpace, spec: string): SubnetConfig {
  if ((NAMED_SUBNETS as readonly string[]).includes(spec)) return namedSubnet(space, spec as NamedSubnet);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(spec, 'utf8'));
  } catch (e) {
    throw new Error(`--subnet ${spec}: not one of ${NAMED_SUBNETS.join(', ')} and not a readable JSON file (${(e as Error).message})`);
  }
  const cfg = (json as { config?: unknown }).config ?? json; // accept a bare config or a search result {config: …}
  return validateSubnet(space, cfg, spec);
}

export function validateSubnet(space: SearchSpace, cfg: unknown, source: string): SubnetConfig {
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg))
    throw new Error(`${source}: a sub-network configuration is a JSON object { groupId: value }`);
  const c = cfg as Record<string, unknown>;
  for (const g of space.groups) {
    if (!(g.id in c)) throw new Error(`${source}: missing group "${g.id}" (choices ${g.choices.join(', ')})`);
    if (!g.choices.includes(c[g.id] as number))
      throw new Error(`${source}: group "${g.id}" = ${JSON.stringify(c[g.id])} is not one of its choices ${g.choices.join(', ')}`);
  }
  const known = new Set(space.groups.map((g) => g.id));
  for (const k of Object.keys(c))
    if (!known.has(k)) throw new Error(`${source}: unknown group "${k}" (this search space has: ${[...known].join(', ') || 'none'})`);
  return c as SubnetConfig;
}

/**
 * Sets every module's active sizes to `config` (modules outside every group go back to full size). A
 * projection without an adapter that a width group narrows is wrapped, once, in an ElasticLinear.
 */
export function applySubnet(model: LlamaModel, space: SearchSpace, config: SubnetConfig): void {
  model.layers.forEach((layer, l) => applySubnetToLayer(layer.proj, l, model.config, space, config));
}

/** What a configuration sets in one layer: adapter ranks by projection (with the group setting each), MLP width, query heads. */
interface LayerChoice {
  ranks: Map<ProjectionName, { rank: number; group: string }>;
  mlpWidth?: number;
  heads?: number;
}

function layerChoice(space: SearchSpace, config: SubnetConfig, l: number): LayerChoice {
  const choice: LayerChoice = { ranks: new Map() };
  for (const g of space.groups) {
    const v = config[g.id];
    if (v === undefined) throw new Error(`sub-network configuration has no value for group "${g.id}"`);
    if (!g.layers.includes(l)) continue;
    if (g.kind === 'rank') for (const m of g.modules) choice.ranks.set(m as ProjectionName, { rank: v, group: g.id });
    else if (g.kind === 'mlp_width') choice.mlpWidth = v;
    else choice.heads = v;
  }
  return choice;
}

/** The layer sizes of the model `c` at `config` (what extracting it writes): MLP width, query and key/value heads. */
export function subnetLayerSizes(c: LlamaConfig, space: SearchSpace, config: SubnetConfig): LayerSizes[] {
  return c.layers.map((s, l) => chosenSizes(s, layerChoice(space, config, l)));
}

/** A layer's stored sizes `s` at a choice (a GQA layer keeps its ratio of query to key/value heads). */
function chosenSizes(s: LayerSizes, { mlpWidth, heads }: LayerChoice): LayerSizes {
  return {
    intermediateSize: mlpWidth ?? s.intermediateSize,
    numHeads: heads ?? s.numHeads,
    numKvHeads: heads === undefined ? s.numKvHeads : heads / (s.numHeads / s.numKvHeads),
  };
}

/** applySubnet for layer `l` alone, given its projections (`c`: the full model's config), e.g. while streaming layer by layer. */
export function applySubnetToLayer(
  proj: Record<ProjectionName, LinearLike>,
  l: number,
  c: LlamaConfig,
  space: SearchSpace,
  config: SubnetConfig,
): void {
  for (const p of Object.values(proj)) resetModule(p);
  const choice = layerChoice(space, config, l);
  for (const [m, { rank, group }] of choice.ranks) {
    const mod = proj[m];
    if (!(mod instanceof LoraLinear))
      throw new Error(`search space group "${group}" sets the rank of ${m} in layer ${l}, which has no LoRA adapter (add it to --targets)`);
    mod.activeRank = rank;
  }
  const D = c.headDim,
    sizes = chosenSizes(c.layers[l], choice);
  if (choice.mlpWidth !== undefined) {
    elastic(proj, 'gate_proj').activeOut = sizes.intermediateSize;
    elastic(proj, 'up_proj').activeOut = sizes.intermediateSize;
    elastic(proj, 'down_proj').activeIn = sizes.intermediateSize;
  }
  if (choice.heads !== undefined) {
    elastic(proj, 'q_proj').activeOut = sizes.numHeads * D;
    elastic(proj, 'k_proj').activeOut = sizes.numKvHeads * D;
    elastic(proj, 'v_proj').activeOut = sizes.numKvHeads * D;
    elastic(proj, 'o_proj').activeIn = sizes.numHeads * D;
  }
}

/** Every module back to its stored size, every adapter to its full rank. */
export function applyFullSize(model: LlamaModel): void {
  for (const layer of model.layers) for (const p of Object.values(layer.proj)) resetModule(p);
}

function elastic(proj: Record<ProjectionName, LinearLike>, p: ProjectionName): LoraLinear | ElasticLinear {
  const m = proj[p];
  if (m instanceof LoraLinear || m instanceof ElasticLinear) return m;
  if (m instanceof Linear || m instanceof QuantLinear) {
    const elastic = new ElasticLinear(m);
    proj[p] = elastic;
    return elastic;
  }
  throw new Error(`elastic widths need Linear, QuantLinear or LoRA modules (${p} is a ${m.constructor.name})`);
}

function resetModule(m: LinearLike): void {
  if (m instanceof LoraLinear || m instanceof ElasticLinear) m.resetActive();
}
