/**
 * A small ONNX graph builder: nodes, initializers and typed graph inputs/outputs as plain objects shaped
 * like onnx.proto's messages (NodeProto, TensorProto, ValueInfoProto), encoded by protobufjs in proto.ts.
 * Node names are `/<scope>/<op>_<n>` (scope: e.g. model/layers.3/mlp), so the graph reads like the model it computes.
 */

/** onnx.TensorProto.DataType values used here. */
export const DType = { FLOAT: 1, UINT8: 2, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type DTypeCode = (typeof DType)[keyof typeof DType];

/** onnx.AttributeProto.AttributeType values used here. */
const ATTR = { INT: 2, INTS: 7 } as const;

/** Integer attributes only: every float in the graph is a constant tensor. */
export type AttrValue = number | number[];
/** Dimension: a fixed size or a symbolic name (e.g. 'batch_size'). */
export type Dim = number | string;

export interface Initializer {
  name: string;
  dataType: DTypeCode;
  dims: number[];
  /** little-endian raw bytes */
  data: Uint8Array;
}

interface NodeRecord {
  opType: string;
  domain: string;
  input: string[];
  output: string[];
  name: string;
  attribute: object[];
}

interface ValueInfo {
  name: string;
  type: object;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function toAttribute(name: string, v: AttrValue): object {
  if (Array.isArray(v)) return { name, type: ATTR.INTS, ints: v };
  if (!Number.isInteger(v)) throw new Error(`internal: attribute ${name} = ${v}: integers only`);
  return { name, type: ATTR.INT, i: v };
}

const tensorType = (dataType: DTypeCode, dims: Dim[]) => ({
  tensorType: { elemType: dataType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
});

export class GraphBuilder {
  readonly nodes: NodeRecord[] = [];
  readonly initializers: Initializer[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private counter = 0;
  private consts = new Map<string, string>();
  /** prefix of generated node and value names (e.g. the layer being built) */
  scope = 'model';

  /** Adds a single-output node; returns its output's name (`output`, else generated from the node's name). */
  op1(opType: string, input: string[], attrs: Record<string, AttrValue> = {}, opts: { output?: string; domain?: string } = {}): string {
    const name = `/${this.scope}/${opType}_${this.counter++}`;
    const output = opts.output ?? `${name}_out0`;
    const attribute = Object.entries(attrs).map(([k, v]) => toAttribute(k, v));
    this.nodes.push({ opType, domain: opts.domain ?? '', input, output: [output], name, attribute });
    return output;
  }

  initializer(name: string, dataType: DTypeCode, dims: number[], data: ArrayBufferView): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const itemBytes = { [DType.FLOAT]: 4, [DType.UINT8]: 1, [DType.INT64]: 8, [DType.BOOL]: 1, [DType.FLOAT16]: 2 }[dataType];
    if (data.byteLength !== count * itemBytes)
      throw new Error(`internal: initializer ${name} has ${data.byteLength} bytes, dims [${dims}] need ${count * itemBytes}`);
    this.initializers.push({ name, dataType, dims, data: bytesOf(data) });
    return name;
  }

  /** A shared int64 constant (shapes, axes, indices); `scalar` gives a 0-d tensor. */
  int64(values: number[], scalar = false): string {
    const key = `i64:${scalar ? 's' : ''}${values.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_i64_${this.consts.size}`;
      this.initializer(name, DType.INT64, scalar ? [] : [values.length], BigInt64Array.from(values.map(BigInt)));
      this.consts.set(key, name);
    }
    return name;
  }

  /** A shared float32 constant (a scalar when one value). */
  float(values: number[] | Float32Array, dims: number[] = values.length === 1 ? [] : [values.length]): string {
    const key = `f32:${dims.join('x')}:${Array.from(values).join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_f32_${this.consts.size}`;
      this.initializer(name, DType.FLOAT, dims, Float32Array.from(values));
      this.consts.set(key, name);
    }
    return name;
  }

  input(name: string, dataType: DTypeCode, dims: Dim[]): string {
    this.inputs.push({ name, type: tensorType(dataType, dims) });
    return name;
  }

  output(name: string, dataType: DTypeCode, dims: Dim[]): void {
    this.outputs.push({ name, type: tensorType(dataType, dims) });
  }

  /** Bytes of all initializers. */
  initializerBytes(): number {
    return this.initializers.reduce((a, t) => a + t.data.byteLength, 0);
  }
}
