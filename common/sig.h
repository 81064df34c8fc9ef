/* common/sig.h - the stop signals of the long-running subcommands (coordinator, worker). */
#ifndef EM_SIG_H
#define EM_SIG_H

/* SIGTERM and SIGINT call on_stop, installed without SA_RESTART so that a blocking
 * zmq_poll() or read() returns EINTR and the loop sees its flag; SIGPIPE is ignored (a
 * closed peer is an error return, not the end of the process). Process-wide. */
void em_sig_on_stop(void (*on_stop)(int));
#endif
