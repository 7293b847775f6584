// skynet.go - the skynet benchmark (github.com/atemerev/skynet): a tree of
// goroutines, each node starting ten children, until --size leaves each
// send their number back up; the root sums them. 1,000,000 leaves means
// 1,111,111 goroutines. Prints the first and the best of --runs after a
// warm-up at a tenth of the size.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

func skynet(c chan<- int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	for i := 0; i < div; i++ {
		sub := num + i*(size/div)
		go skynet(rc, sub, size/div, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func body(size int) (time.Duration, int) {
	c := make(chan int)
	t0 := time.Now()
	go skynet(c, 0, size, 10)
	sum := <-c
	return time.Since(t0), sum
}

func main() {
	size := flag.Int("size", 1000000, "leaves: a power of 10")
	runs := flag.Int("runs", 5, "timed runs after one warm-up; the best counts")
	flag.Parse()
	if flag.NArg() > 0 || *size < 1 || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	for s := *size; s > 1; s /= 10 {
		if s%10 != 0 {
			fmt.Fprintln(os.Stderr, "skynet: --size must be a power of 10")
			os.Exit(2)
		}
	}
	want := *size * (*size - 1) / 2
	body(max(*size/10, 1)) // warm-up, as bench_skynet does
	best, first := time.Duration(1<<63-1), time.Duration(0)
	for r := 1; r <= *runs; r++ {
		d, sum := body(*size)
		if sum != want {
			fmt.Fprintf(os.Stderr, "skynet: sum %d, want %d\n", sum, want)
			os.Exit(1)
		}
		fmt.Printf("run %d: sum %d in %.3f ms\n", r, sum, float64(d.Nanoseconds())/1e6)
		if r == 1 {
			first = d
		}
		if d < best {
			best = d
		}
	}
	fmt.Printf("skynet: %d leaves, GOMAXPROCS=%d; best of %d runs after a warm-up\n",
		*size, runtime.GOMAXPROCS(0), *runs)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("size=%d runs=%d procs=%d sum=%d peak_rss_kb=%d first_run_seconds=%.4f seconds=%.4f\n",
		*size, *runs, runtime.GOMAXPROCS(0), want, ru.Maxrss, first.Seconds(), best.Seconds())
}
