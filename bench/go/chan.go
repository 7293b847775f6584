// chan.go - Go's side of bench_channel: two goroutines passing a message
// back and forth over two unbuffered channels. Prints ns per one-way
// message, best of --runs after a warm-up, as bench_channel does.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func body(iters uint64) time.Duration {
	a, b := make(chan int), make(chan int)
	rounds := iters / 2
	done := make(chan struct{})
	go func() {
		for i := uint64(0); i < rounds; i++ {
			b <- <-a
		}
		close(done)
	}()
	t0 := time.Now()
	for i := uint64(0); i < rounds; i++ {
		a <- 1
		<-b
	}
	d := time.Since(t0)
	<-done
	return d
}

func main() {
	iters := flag.Uint64("iters", 4000000, "one-way messages per run")
	runs := flag.Int("runs", 5, "timed runs after one warm-up; the best counts")
	flag.Parse()
	if flag.NArg() > 0 || *iters < 2 || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	n := *iters &^ 1
	body(n / 10)
	best := time.Duration(1<<63 - 1)
	for r := 1; r <= *runs; r++ {
		d := body(n)
		fmt.Printf("run %d: %d ops in %.3f ms, %.2f ns each\n", r, n, float64(d.Nanoseconds())/1e6,
			float64(d.Nanoseconds())/float64(n))
		if d < best {
			best = d
		}
	}
	fmt.Printf("chan: one-way message over unbuffered channels, two goroutines, GOMAXPROCS=%d; best of %d runs after a warm-up\n",
		runtime.GOMAXPROCS(0), *runs)
	fmt.Printf("iters=%d runs=%d procs=%d best_ns=%d ns_per_message=%.2f\n", n, *runs,
		runtime.GOMAXPROCS(0), best.Nanoseconds(), float64(best.Nanoseconds())/float64(n))
}
