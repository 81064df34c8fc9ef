/* model/family.c - the family table and its detection (model/family.h). */
#include "model/family.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/qwen2audio/config.h"
#include "model/loader/ct2.h"
#include "model/loader/gguf.h"

static const char *const qwen_tasks[] = {"caption", "transcript", "events", NULL};
static const char *const whisper_tasks[] = {"transcript", NULL};

const struct em_family em_families[] = {
    {EM_FAMILY_QWEN2_AUDIO, "qwen2-audio", qwen_tasks, true},
    {EM_FAMILY_WHISPER, "whisper", whisper_tasks, false},
    {0, NULL, NULL, false},
};

bool em_family_can(const struct em_family *f, const char *task)
{
    if (!task) return f->free_text;
    for (const char *const *t = f->tasks; *t; t++)
        if (!strcmp(*t, task)) return true;
    return false;
}

const char *em_family_tasks_str(const struct em_family *f)
{
    return f->id == EM_FAMILY_WHISPER ? "transcript" : "caption, transcript, events, free text";
}

/* config.json's model_type, or "" (absent, unreadable or not JSON: the loader says why). */
static void model_type(const char *dir, char *out, size_t cap)
{
    char p[4096], *txt = NULL;
    size_t len = 0;
    out[0] = '\0';
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (em_cfg_read_file(p, 1, &txt, &len, NULL) != EM_OK || !txt) return;
    json_t *j = json_loadb(txt, len, 0, NULL);
    free(txt);
    const char *s = json_string_value(json_object_get(j, "model_type"));
    if (s) snprintf(out, cap, "%s", s);
    json_decref(j);
}

em_err em_family_detect(const char *path, const struct em_family **out, struct em_errbuf *eb)
{
    struct stat sb;
    char p[4096], type[64];
    *out = &em_families[EM_FAMILY_QWEN2_AUDIO];
    if (path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* a GGUF: general.architecture "whisper" (model/whisper/gguf.c), else Qwen2-Audio
         * (whose loader reports what is wrong with the file) */
        struct em_gguf *g = NULL;
        struct em_gguf_str a = {0};
        if (em_gguf_open(path, &g, NULL) == EM_OK &&
            em_gguf_get_str(g, "general.architecture", &a, NULL) == EM_OK && a.len == 7 &&
            memcmp(a.s, "whisper", 7) == 0)
            *out = &em_families[EM_FAMILY_WHISPER];
        em_gguf_close(g);
        return EM_OK;
    }
    if (!path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return EM_OK;
    model_type(path, type, sizeof type);
    if (!strcmp(type, "whisper")) {
        *out = &em_families[EM_FAMILY_WHISPER];
        return EM_OK;
    }
    if (snprintf(p, sizeof p, "%s/model.bin", path) >= (int)sizeof p || stat(p, &sb) != 0)
        return EM_OK;
    struct em_ct2 *c = NULL;
    em_err rc = em_ct2_open(p, &c, eb);
    if (rc != EM_OK) return rc;
    if (strcmp(em_ct2_spec(c), "WhisperSpec") != 0)
        rc = em_errf(eb, EM_E_MODEL, "%s: CTranslate2 spec '%s': earmark runs WhisperSpec only", p,
                     em_ct2_spec(c));
    else
        *out = &em_families[EM_FAMILY_WHISPER];
    em_ct2_free(c);
    return rc;
}
