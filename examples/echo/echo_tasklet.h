/* echo_tasklet.h - what the two tasklet programs (echo_server, echo_client)
 * share: the runtime started with the smallest stacks. */
#ifndef ECHO_TASKLET_H
#define ECHO_TASKLET_H

#include <stdio.h>

#include <stackless.h>

/* A connection's tasklet needs little stack (its frame, a small buffer
 * and the runtime's park path), so it gets the least the runtime gives:
 * 10,000 of them touch well under 200 MiB. */
#define ECHO_STACK_SIZE (16 * 1024)

/* sl_init with workers workers and ECHO_STACK_SIZE stacks: 0, or the exit
 * status after saying why as prog (2 when the runtime refuses the
 * configuration, 1 otherwise). */
static inline int echo_tasklets_start(const char *prog, int workers)
{
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = workers;
    cfg.stack_size = ECHO_STACK_SIZE;
    int rc = sl_init(&cfg);
    if (rc == 0)
        return 0;
    fprintf(stderr, "%s: sl_init(workers=%d): %s\n", prog, workers, sl_strerror(rc));
    return rc == SL_EINVAL ? 2 : 1;
}

#endif /* ECHO_TASKLET_H */
