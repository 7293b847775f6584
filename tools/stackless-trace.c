/* stackless-trace.c - turns the raw file of a trace that never stopped (the
 * program crashed or was killed before sl_trace_stop, sl_shutdown or exit:
 * docs/trace.md) into the Chrome Trace Event JSON the trace would have
 * been. Everything but the buffer each worker was filling is there.
 *
 * usage: stackless-trace TRACE.json.raw [TRACE.json]
 * (the JSON goes to standard output when no second file is named) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stackless.h>

int sl__trace_convert(int raw, int json); /* sched/trace.h */

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr,
                "usage: stackless-trace TRACE.json.raw [TRACE.json]\n");
        return 2;
    }
    int in = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        fprintf(stderr, "stackless-trace: %s: %s\n", argv[1],
                strerror(errno));
        return 1;
    }
    int out = 1;
    if (argc == 3)
        out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        fprintf(stderr, "stackless-trace: %s: %s\n", argv[2],
                strerror(errno));
        return 1;
    }
    int rc = sl__trace_convert(in, out);
    if (rc == 0 && out != 1 && close(out) < 0)
        rc = -errno;
    if (rc < 0) {
        fprintf(stderr, "stackless-trace: %s: %s\n", argv[1],
                rc == SL_EINVAL ? "not a stackless trace" : sl_strerror(rc));
        return 1;
    }
    return 0;
}
