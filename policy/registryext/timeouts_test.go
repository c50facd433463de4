package registryext_test

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// A request body that trickles in or stalls is cut off within the body
// timeouts; a large upload at a steady rate above the minimum is not,
// though it takes longer than either timeout.
func TestBodyTimeouts(t *testing.T) {
	timeouts := registryext.Timeouts{BodyIdle: 1500 * time.Millisecond, BodyGrace: time.Second, BodyMinRate: 64 << 10}
	srv := registrytest.Start(t, registryext.Config{Root: t.TempDir(), Timeouts: timeouts})
	for _, tc := range []struct {
		name         string
		total, chunk int
		every        time.Duration
		ok           bool
		within       time.Duration // cut off by then
	}{
		// 1 byte a second never waits 1.5 s but falls below 64 KiB/s after the 1 s grace.
		{name: "slowloris", total: 20, chunk: 1, every: time.Second, within: 4 * time.Second},
		// 1 MiB at once is ahead of the rate for 16 s, but then no byte comes for 1.5 s.
		{name: "stalled", total: 1 << 20, chunk: 1 << 20, every: time.Second, within: 4 * time.Second},
		// 4 MiB at 1 MiB/s: about 4 s.
		{name: "steady", total: 4 << 20, chunk: 32 << 10, every: 31250 * time.Microsecond, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(strings.Repeat("ociwf", tc.total/5+1))[:tc.total]
			loc, err := url.Parse(startUpload(t, srv.Addr(), "timeouts/"+tc.name))
			if err != nil {
				t.Fatal(err)
			}
			q := loc.Query()
			q.Set("digest", digest.FromBytes(data).String())
			loc.RawQuery = q.Encode()
			conn, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			length := tc.total
			if !tc.ok {
				length++ // the last byte never comes
			}
			fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", loc.RequestURI(), srv.Addr(), length)
			status := make(chan string, 1)
			go func() {
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil {
					line = "closed: " + err.Error()
				}
				status <- line
			}()
			start := time.Now()
			tick := time.NewTicker(tc.every)
			defer tick.Stop()
			var got string
			for off := 0; got == "" && off < tc.total; off += tc.chunk {
				if _, err := conn.Write(data[off:min(off+tc.chunk, tc.total)]); err != nil {
					break
				}
				select {
				case got = <-status:
				case <-tick.C:
				}
			}
			if got == "" {
				select {
				case got = <-status:
				case <-time.After(20 * time.Second):
					t.Fatalf("no response 20 s after the body's last byte was sent")
				}
			}
			took := time.Since(start)
			if tc.ok {
				if !strings.HasPrefix(got, "HTTP/1.1 201") {
					t.Fatalf("steady upload refused after %s: %q", took, got)
				}
				return
			}
			if strings.HasPrefix(got, "HTTP/1.1 201") || took > tc.within {
				t.Fatalf("%q after %s, want a cut-off within %s", got, took, tc.within)
			}
		})
	}
}
