// hackysack.go - the hackysack game of examples/hackysack in Go, one
// goroutine and one unbuffered channel per player, for same-run ratios.
//
// It plays the identical game: the same per-player generator (xorshift64*
// seeded by splitmix64 from --seed and the player index), the same unbiased
// draw, the same end (the K-th kicker tells every other player to exit), and
// it prints the same trace and the same last line, with mode=go and
// workers=GOMAXPROCS.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

const (
	ball   = 1
	exitup = 2
)

type player struct {
	ch  chan int8
	rng uint64 // touched only by this player
	id  uint32
}

// The game. kicks, received and trace are touched only by the ball holder;
// the channel hand-off orders them.
type game struct {
	p                       []player
	n                       uint32
	target, kicks, received uint64
	trace                   uint64
	verbose                 bool
	ready, done             sync.WaitGroup
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func rngSeed(seed uint64, i uint32) uint64 {
	s := mix64(seed + 0x9e3779b97f4a7c15*(uint64(i)+1))
	if s == 0 {
		s = 0x9e3779b97f4a7c15
	}
	return s
}

func rngNext(s *uint64) uint64 {
	x := *s
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*s = x
	return x * 0x2545f4914f6cdd1d
}

// A uniform draw in [0, n): Lemire's multiply-shift with rejection.
func rngBelow(s *uint64, n uint32) uint32 {
	m := uint64(uint32(rngNext(s)>>32)) * uint64(n)
	lo := uint32(m)
	if lo < n {
		t := -n % n
		for lo < t {
			m = uint64(uint32(rngNext(s)>>32)) * uint64(n)
			lo = uint32(m)
		}
	}
	return uint32(m >> 32)
}

func pick(s *uint64, self, n uint32) uint32 {
	for {
		if to := rngBelow(s, n); to != self {
			return to
		}
	}
}

func (g *game) play(me *player) {
	defer g.done.Done()
	g.ready.Done()
	for {
		if <-me.ch == exitup {
			return
		}
		g.received++
		to := pick(&me.rng, me.id, g.n)
		g.kicks++
		g.trace = (g.trace ^ uint64(to)) * 0x100000001b3
		if g.verbose {
			fmt.Printf("player %d kicks to player %d\n", me.id, to)
		}
		if g.kicks == g.target {
			if g.verbose {
				fmt.Printf("player %d ends the game after %d kicks\n", me.id, g.kicks)
			}
			for i := range g.p {
				if uint32(i) != me.id {
					g.p[i].ch <- exitup
				}
			}
			return
		}
		g.p[to].ch <- ball
	}
}

// cpuSeconds is the CPU time (user and system, every thread) the process has
// used so far, as examples/hackysack's hs_cpu.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)*1e-6
}

func main() {
	players := flag.Uint("players", 10000, "players in the circle, >= 2")
	kicks := flag.Uint64("kicks", 1000000, "kicks before the game ends")
	seed := flag.Uint64("seed", 1, "seed of the players' generators")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: Go's default, the number of CPUs)")
	verbose := flag.Bool("verbose", false, "print every kick")
	flag.Parse()
	if flag.NArg() > 0 || *players < 2 || *players > 100000000 || *kicks < 1 {
		fmt.Fprintln(os.Stderr, "hackysack: want --players >= 2, --kicks >= 1 and no arguments")
		flag.Usage()
		os.Exit(2)
	}
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}

	g := &game{n: uint32(*players), target: *kicks, trace: 0xcbf29ce484222325, verbose: *verbose}
	c0 := cpuSeconds()
	t0 := time.Now()
	g.p = make([]player, g.n)
	g.ready.Add(int(g.n))
	g.done.Add(int(g.n))
	for i := range g.p {
		p := &g.p[i]
		p.id = uint32(i)
		p.rng = rngSeed(*seed, uint32(i))
		p.ch = make(chan int8)
		go g.play(p)
	}
	g.ready.Wait() // every player is at (or about to block in) its receive
	t1 := time.Now()
	c1 := cpuSeconds()
	g.p[0].ch <- ball
	g.done.Wait()
	t2 := time.Now()
	c2 := cpuSeconds()

	if g.kicks != *kicks || g.received != *kicks {
		fmt.Fprintf(os.Stderr, "hackysack: %d kicks and %d balls received, want %d of each\n",
			g.kicks, g.received, *kicks)
		os.Exit(1)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	secs := t2.Sub(t0).Seconds()
	fmt.Printf("hackysack: %d kicks, %d balls received, trace %016x\n", g.kicks, g.received, g.trace)
	fmt.Printf("mode=go players=%d kicks=%d workers=%d procs=1 seconds=%.4f spawn_seconds=%.4f "+
		"game_seconds=%.4f kicks_per_sec=%.0f peak_rss_kb=%d spawn_cpu_seconds=%.4f game_cpu_seconds=%.4f\n",
		g.n, *kicks, runtime.GOMAXPROCS(0), secs, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(),
		float64(*kicks)/secs, ru.Maxrss, c1-c0, c2-c1)
}
