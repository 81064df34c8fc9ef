/* model/loader/ct2.h - CTranslate2 model.bin reader (the format faster-whisper ships).
 *
 *   file     = u32 binary_version | str spec_name | u32 spec_revision      (version >= 2)
 *              | u32 n_vars | var * n_vars | u32 n_aliases | alias * n_aliases
 *   str      = u16 len (bytes including the terminating NUL, >= 1) | len bytes, last one NUL
 *   var      = str name | u8 rank | u32 dim * rank | u8 dtype | u32 nbytes | nbytes of data
 *   alias    = str alias_name | str variable_name
 *   dtype    : 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16 (version >= 4;
 *              older files store an item size instead and are refused)
 *   All integers and data little-endian; data row-major, shape as stored ([out, in] for a
 *   Linear weight, [out, in, k] for a Conv1d weight). Scalars (rank 0) carry one element:
 *   the spec's settings such as num_heads or activation.
 *   ref: OpenNMT/CTranslate2 python/ctranslate2/specs/model_spec.py ModelSpec._serialize,
 *        src/models/model.cc Model::load, include/ctranslate2/types.h DataType
 *
 * em_ct2_parse reads a buffer and does no I/O; every length and offset is checked against
 * the buffer before it is used, so any bytes either parse or give EM_E_MODEL. Variables are
 * borrowed views into the buffer (names too: they point at the NUL-terminated strings in it).
 * Thread-safety: a parsed em_ct2 is read-only and may be shared by threads. */
#ifndef EM_CT2_H
#define EM_CT2_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/loader/tensor.h"

#define EM_CT2_VERSION_MIN 4       /* first version with dtype ids */
#define EM_CT2_VERSION_MAX 6       /* the newest this reader knows (CTranslate2 4.x writes 6) */
#define EM_CT2_MAX_VARS 65536      /* variables per file */
#define EM_CT2_MAX_ALIASES 65536   /* aliases per file */
#define EM_CT2_MAX_RANK 4          /* = EM_TENSOR_MAX_DIMS */

enum em_ct2_dtype {
    EM_CT2_F32 = 0,
    EM_CT2_I8 = 1,
    EM_CT2_I16 = 2,
    EM_CT2_I32 = 3,
    EM_CT2_F16 = 4,
    EM_CT2_BF16 = 5,
};

/* One variable; everything borrowed from the parsed buffer. */
struct em_ct2_var {
    const char *name;                /* NUL-terminated, inside the buffer */
    int dtype;                       /* enum em_ct2_dtype */
    int ndim;                        /* 0..EM_CT2_MAX_RANK */
    int64_t shape[EM_CT2_MAX_RANK];
    const void *data;                /* nbytes = numel * element size; may be unaligned */
    size_t nbytes;
};

struct em_ct2;

/* Parses buf[len] (file names the source in messages). buf must outlive *out. On EM_OK the
 * caller owns *out (em_ct2_free). Errors: EM_E_MODEL (truncated, oversized counts, unknown
 * dtype or version, a size that disagrees with the shape, duplicate names, an alias to a
 * missing variable, bytes after the aliases), EM_E_NOMEM. On error *out is NULL. */
em_err em_ct2_parse(const uint8_t *buf, size_t len, const char *file, struct em_ct2 **out,
                    struct em_errbuf *eb);
/* Maps path read-only and parses it; the mapping lives until em_ct2_free. Errors: those of
 * em_ct2_parse, EM_E_NOTFOUND (no such file), EM_E_IO. */
em_err em_ct2_open(const char *path, struct em_ct2 **out, struct em_errbuf *eb);
void em_ct2_free(struct em_ct2 *c); /* NULL ok; every view taken from c dies */

const char *em_ct2_spec(const struct em_ct2 *c); /* "WhisperSpec"; "" before version 2 */
uint32_t em_ct2_version(const struct em_ct2 *c);
uint32_t em_ct2_revision(const struct em_ct2 *c);
size_t em_ct2_count(const struct em_ct2 *c);                            /* variables */
void em_ct2_get(const struct em_ct2 *c, size_t i, struct em_ct2_var *v); /* i < count */
size_t em_ct2_alias_count(const struct em_ct2 *c);

/* Finds a variable by name, following an alias ("decoder/projection/weight" -> the
 * embeddings). Errors: EM_E_NOTFOUND. */
em_err em_ct2_find(const struct em_ct2 *c, const char *name, struct em_ct2_var *v);

/* The named float variable (f32, f16, bf16) as an em_tensor view (model/loader/tensor.h),
 * checked to have ndim dimensions (-1: any). Errors (detail names the variable):
 * EM_E_NOTFOUND, EM_E_MODEL (integer dtype, wrong rank). */
em_err em_ct2_tensor(const struct em_ct2 *c, const char *name, int ndim, struct em_tensor *t,
                     struct em_errbuf *eb);
/* The named integer scalar (int8, int16 or int32, one element) into *v. Errors: EM_E_NOTFOUND,
 * EM_E_MODEL (not an integer scalar). */
em_err em_ct2_int(const struct em_ct2 *c, const char *name, long *v, struct em_errbuf *eb);

const char *em_ct2_dtype_name(int dtype); /* "float32", ..., "?" */

#endif
