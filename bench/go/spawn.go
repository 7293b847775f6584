// spawn.go - Go's side of bench_spawn: start a goroutine, let it run to its
// end, repeat; main waits for each one on a channel before starting the
// next, as main's sl_run() does for a tasklet. Prints ns per spawn, best of
// --runs after a warm-up.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

var ran uint64

func noop(done chan<- struct{}) {
	ran++
	done <- struct{}{}
}

func body(iters uint64) time.Duration {
	done := make(chan struct{})
	t0 := time.Now()
	for i := uint64(0); i < iters; i++ {
		go noop(done)
		<-done
	}
	return time.Since(t0)
}

func main() {
	iters := flag.Uint64("iters", 1000000, "goroutines per run")
	runs := flag.Int("runs", 5, "timed runs after one warm-up; the best counts")
	flag.Parse()
	if flag.NArg() > 0 || *iters < 1 || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	body(*iters / 10)
	best := time.Duration(1<<63 - 1)
	for r := 1; r <= *runs; r++ {
		d := body(*iters)
		fmt.Printf("run %d: %d ops in %.3f ms, %.2f ns each\n", r, *iters, float64(d.Nanoseconds())/1e6,
			float64(d.Nanoseconds())/float64(*iters))
		if d < best {
			best = d
		}
	}
	fmt.Printf("spawn: go f() + run to its end + wait, one at a time, GOMAXPROCS=%d; best of %d runs after a warm-up\n",
		runtime.GOMAXPROCS(0), *runs)
	fmt.Printf("iters=%d runs=%d procs=%d best_ns=%d ns_per_spawn=%.2f\n", *iters, *runs,
		runtime.GOMAXPROCS(0), best.Nanoseconds(), float64(best.Nanoseconds())/float64(*iters))
}
