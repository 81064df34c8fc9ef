/* model/family.h - the model families earmark runs, one table, chosen from the checkpoint.
 *
 *   family        checkpoint                               tasks
 *   qwen2-audio   HF dir (config.json model_type            caption, transcript, events,
 *                 qwen2_audio) or a .gguf from convert       free text
 *   whisper       CTranslate2 dir (model.bin, WhisperSpec)   transcript (text, language,
 *                 or HF dir (model_type whisper)             timestamped segments)
 *
 * What crosses this boundary: model/model.c asks em_family_detect which family a path holds,
 * then loads and runs that family's runtime (model/ for Qwen2-Audio, model/whisper/ for
 * Whisper) behind the one facade worker/ sees (model/model.h). Both share audio decode,
 * log-mel (model/audio/mel.h), the Whisper encoder (model/audio/encoder.h), the loaders and the kernels.
 * A prompt a family cannot answer is refused per item with EM_E_UNSUPPORTED naming the model
 * and the tasks it does. The table is static and read-only: thread-safe. */
#ifndef EM_FAMILY_H
#define EM_FAMILY_H

#include <stdbool.h>

#include "common/err.h"

enum em_family_id {
    EM_FAMILY_QWEN2_AUDIO = 0,
    EM_FAMILY_WHISPER = 1,
};

struct em_family {
    enum em_family_id id;
    const char *name;         /* "qwen2-audio", "whisper" */
    const char *const *tasks; /* built-in tasks it answers, NULL-terminated */
    bool free_text;           /* answers free-text prompts */
};

/* Every family, ending with an entry whose name is NULL. */
extern const struct em_family em_families[];

/* The family of the checkpoint at path: a regular file is a GGUF from `earmark convert`
 * (Qwen2-Audio); a directory with model.bin whose CTranslate2 spec is WhisperSpec, or whose
 * config.json says model_type "whisper", is Whisper; any other directory is Qwen2-Audio (its
 * loader reports what is missing). Errors: EM_E_MODEL (a model.bin of another CTranslate2
 * spec, or an unreadable one), EM_E_NOMEM. */
em_err em_family_detect(const char *path, const struct em_family **out, struct em_errbuf *eb);

/* True when f answers the built-in task (task != NULL) or free text (task == NULL). */
bool em_family_can(const struct em_family *f, const char *task);

/* The tasks of f as one string, "caption, transcript, events" (static storage per family). */
const char *em_family_tasks_str(const struct em_family *f);

#endif
