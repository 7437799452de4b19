/** A refused config.json value is printed once, in `field "…" = value`, not repeated in the message. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHfConfig } from '../../src/models/llama/hf-config.ts';

const base = { model_type: 'llama', vocab_size: 40, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 };

function refusal(quantization_config: object): string {
  try {
    parseHfConfig({ ...base, quantization_config }, 'config.json');
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected a refusal');
}

test('the AWQ refusal and the checkpoint_format refusal print their value once', () => {
  const awq = refusal({ quant_method: 'awq', bits: 4 });
  assert.match(awq, /field "quantization_config.quant_method" = "awq" is not supported \(lonas loads GPTQ checkpoints/);
  assert.equal(awq.split('"awq"').length - 1, 1, awq);
  const fmt = refusal({ quant_method: 'gptq', bits: 4, checkpoint_format: 'marlin' });
  assert.match(fmt, /field "quantization_config.checkpoint_format" = "marlin" is not supported \(gptq or gptq_v2\)/);
  assert.equal(fmt.split('"marlin"').length - 1, 1, fmt);
});
