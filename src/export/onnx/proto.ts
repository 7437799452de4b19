/**
 * Serialises a GraphBuilder as an ONNX ModelProto with protobufjs and the official onnx.proto (vendored
 * verbatim beside this file from onnx/onnx at f7546912, Apache-2.0). Initializers go inline (raw_data), or,
 * with external data, into `<model file>_data` (those of 1 KiB or more, each 4096-byte aligned so runtimes
 * can map it), which models over protobuf's 2 GB limit need. Files are written to a temporary name and
 * renamed.
 */
import { closeSync, openSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { GraphBuilder, Initializer } from './graph.ts';

/** ONNX IR version 8 with the default opset 17 and the com.microsoft contrib opset (MatMulNBits). */
const IR_VERSION = 8;
export const OPSET = 17;
export const MS_DOMAIN = 'com.microsoft';

/** protobuf messages are limited to 2 GiB; stay clear of it (graph structure and the header need room). */
export const INLINE_LIMIT_BYTES = 2 ** 31 - 2 ** 26;
const ALIGN = 4096;
/** smaller initializers (shapes, axes, scalars) stay inline: shape inference must read them (as onnx's size_threshold) */
const EXTERNAL_MIN_BYTES = 1024;
const EXTERNAL = 1; // TensorProto.DataLocation.EXTERNAL

let modelType: protobuf.Type | null = null;
function modelProto(): protobuf.Type {
  modelType ??= protobuf.loadSync(fileURLToPath(new URL('./onnx.proto', import.meta.url))).lookupType('onnx.ModelProto');
  return modelType;
}

export interface WriteModelOptions {
  /** write initializers to `<path>_data` instead of inside the model file */
  externalData: boolean;
  /** model metadata (ModelProto.metadata_props) */
  metadata?: Record<string, string>;
  docString?: string;
}

/** Writes `graph` as an ONNX model at `path` (and `<path>_data` with external data). Returns the files written. */
export function writeOnnxModel(path: string, graph: GraphBuilder, o: WriteModelOptions): string[] {
  const dataPath = `${path}_data`;
  const initializer = o.externalData ? writeExternalData(dataPath, graph) : graph.initializers.map(inline);
  const model = {
    irVersion: IR_VERSION,
    producerName: 'lonas',
    docString: o.docString ?? '',
    opsetImport: [
      { domain: '', version: OPSET },
      { domain: MS_DOMAIN, version: 1 },
    ],
    metadataProps: Object.entries(o.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: { name: 'main_graph', node: graph.nodes, initializer, input: graph.inputs, output: graph.outputs },
  };
  const bytes = modelProto().encode(model).finish();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
  if (!o.externalData) rmSync(dataPath, { force: true }); // a previous export's data file would only mislead
  return o.externalData ? [path, dataPath] : [path];
}

const inline = (t: Initializer) => ({ name: t.name, dataType: t.dataType, dims: t.dims, rawData: t.data });

/** Streams every initializer of at least EXTERNAL_MIN_BYTES into `dataPath`; returns the TensorProtos that point into it. */
function writeExternalData(dataPath: string, graph: GraphBuilder): object[] {
  const tmp = `${dataPath}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  const location = basename(dataPath);
  const padding = new Uint8Array(ALIGN);
  let offset = 0;
  try {
    const tensors = graph.initializers.map((t) => {
      if (t.data.byteLength < EXTERNAL_MIN_BYTES) return inline(t);
      const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
      if (pad) writeSync(fd, padding, 0, pad);
      offset += pad;
      for (let done = 0; done < t.data.byteLength; ) done += writeSync(fd, t.data, done, t.data.byteLength - done);
      const entry = {
        name: t.name,
        dataType: t.dataType,
        dims: t.dims,
        dataLocation: EXTERNAL,
        externalData: [
          { key: 'location', value: location },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(t.data.byteLength) },
        ],
      };
      offset += t.data.byteLength;
      return entry;
    });
    closeSync(fd);
    renameSync(tmp, dataPath);
    return tensors;
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
    throw e;
  }
}
