/* gdb_tasklets.c - the program tests/gdb_tasklets.sh stops under gdb:
 * three tasklets blocked in functions of known names (a channel receive,
 * a sleep, a read of an empty pipe), then main calls stopped_here(),
 * where gdb has a breakpoint and lists and backtraces the tasklets. Then
 * it lets them go and ends cleanly (it also runs alone).
 *
 * usage: gdb_tasklets [fixed|copy] [WORKERS] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stackless.h>

static sl_channel *ch;
static int pipefd[2];

/* Each blocks in a function of its own, a frame or two below the
 * tasklet's entry, so that the backtrace has something to show. */
__attribute__((noinline)) static void wait_on_channel(void)
{
    void *m;
    if (sl_channel_receive(ch, &m) != 0)
        abort();
}

__attribute__((noinline)) static void wait_on_sleep(void)
{
    int rc = sl_sleep_ms(600000);
    if (rc != 0 && rc != SL_EKILLED)
        abort();
}

__attribute__((noinline)) static void wait_on_pipe(void)
{
    char c;
    if (sl_read(pipefd[0], &c, 1) != 1)
        abort();
}

static void receiver(void *arg)
{
    (void)arg;
    wait_on_channel();
}

static void sleeper(void *arg)
{
    (void)arg;
    wait_on_sleep();
}

static void reader(void *arg)
{
    (void)arg;
    wait_on_pipe();
}

/* gdb stops here; volatile keeps the call from being folded away. */
volatile int stops;
__attribute__((noinline)) void stopped_here(void)
{
    stops++;
}

int main(int argc, char **argv)
{
    sl_config cfg;
    sl_config_init(&cfg);
    if (argc > 1 && strcmp(argv[1], "copy") == 0)
        cfg.stack_mode = SL_STACK_COPY;
    cfg.workers = argc > 2 ? atoi(argv[2]) : 1;
    if (sl_init(&cfg) != 0 || pipe2(pipefd, O_NONBLOCK) != 0)
        return 1;
    ch = sl_channel_new();
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    /* With several workers, the last one holds them (its own thread). */
    a.worker = cfg.workers - 1;
    sl_tasklet *t[3];
    a.name = "receiver";
    t[0] = sl_spawn_ex(&a, receiver, NULL);
    a.name = "sleeper";
    t[1] = sl_spawn_ex(&a, sleeper, NULL);
    a.name = "reader";
    t[2] = sl_spawn_ex(&a, reader, NULL);
    for (int i = 0; i < 3; i++)
        sl_tasklet_ref(t[i]);
    /* Until all three wait. */
    while (!sl_tasklet_blocked(t[0]) || !sl_tasklet_blocked(t[1]) ||
           !sl_tasklet_blocked(t[2]))
        sl_sleep_ms(1);
    stopped_here();
    if (sl_channel_send(ch, NULL) != 0 || write(pipefd[1], "x", 1) != 1 ||
        sl_tasklet_kill(t[1]) < 0)
        return 1;
    while (sl_getlivecount() > 0)
        sl_sleep_ms(1);
    for (int i = 0; i < 3; i++)
        sl_tasklet_unref(t[i]);
    sl_channel_free(ch);
    printf("gdb_tasklets: done\n");
    return sl_shutdown() == 0 ? 0 : 1;
}
