/* tests/fuzz/fuzz_qa_config.c - libFuzzer target for model/config: any bytes, read as
 * config.json and as generation_config.json, either parse into a config whose geometry
 * passes the invariants the model code relies on, or are refused with EM_E_MODEL.
 * Built and run by tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/qwen2audio/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char base[] = "{\"model_type\": \"qwen2_audio\"}";
    struct em_qa_config c;
    struct em_errbuf eb;
    for (int as_gen = 0; as_gen < 2; as_gen++) {
        em_err rc = as_gen ? em_qa_config_parse(base, strlen(base), (const char *)data, size, &c, &eb)
                           : em_qa_config_parse((const char *)data, size, NULL, 0, &c, &eb);
        if (rc == EM_OK) {
            if (c.text.hidden_size % c.text.num_attention_heads != 0 ||
                c.text.num_attention_heads % c.text.num_key_value_heads != 0 ||
                c.audio.d_model % c.audio.encoder_attention_heads != 0 ||
                c.text.head_dim * c.text.num_attention_heads != c.text.hidden_size ||
                c.gen.n_eos < 0 || c.gen.n_eos > EM_CFG_MAX_EOS ||
                c.audio_token_index >= c.text.vocab_size)
                abort();
        } else if (rc != EM_E_MODEL && rc != EM_E_NOMEM) {
            abort();
        }
    }
    return 0;
}
