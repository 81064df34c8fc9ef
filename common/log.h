/* common/log.h - leveled logfmt logger: `ts=... level=warn comp=worker msg="..." k=v`.
 * Library modules (model/, storage/, proto/) do not log; they return errors.
 * Thread-safe: one write(2) per line. Credentials are never passed here. */
#ifndef EM_LOG_H
#define EM_LOG_H

enum em_log_level { EM_LOG_DEBUG, EM_LOG_INFO, EM_LOG_WARN, EM_LOG_ERROR, EM_LOG_OFF };

extern enum em_log_level em_log_min;

void em_log_set_level(enum em_log_level lv);
/* Reads EARMARK_LOG (debug|info|warn|error|off); unknown values leave the level. */
void em_log_init_env(void);
/* Sets the component shown as comp=NAME (a static string). */
void em_log_set_comp(const char *comp);
/* fmt produces the rest of the line after level/comp, already in logfmt. */
void em_log_write(enum em_log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define EM_LOG(lv, ...)                                          \
    do {                                                         \
        if ((lv) >= em_log_min) em_log_write((lv), __VA_ARGS__); \
    } while (0)
#define em_debug(...) EM_LOG(EM_LOG_DEBUG, __VA_ARGS__)
#define em_info(...) EM_LOG(EM_LOG_INFO, __VA_ARGS__)
#define em_warn(...) EM_LOG(EM_LOG_WARN, __VA_ARGS__)
#define em_error(...) EM_LOG(EM_LOG_ERROR, __VA_ARGS__)

/* Copies s into out (cap bytes) escaped for a logfmt quoted value ("" not included). */
const char *em_log_q(char *out, unsigned cap, const char *s);

#endif
