package registryext_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"ociwf.dev/policy/registryext"
)

// startUpload opens an upload session on the registry at host and
// returns its location.
func startUpload(t *testing.T, host, repo string) string {
	t.Helper()
	resp, err := http.Post("http://"+host+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload: %d %q", resp.StatusCode, loc)
	}
	if strings.HasPrefix(loc, "/") {
		loc = "http://" + host + loc
	}
	return loc
}

// http.draintimeout bounds how long Shutdown waits for a request in
// flight; then it is cut off and Shutdown says so.
func TestDrainTimeout(t *testing.T) {
	const drain = 500 * time.Millisecond
	srv, stop := serveStoppable(t, registryext.Config{Distribution: parseConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  draintimeout: 500ms\n")})
	loc := startUpload(t, srv.Addr(), "drain/a")

	// A PATCH whose body never ends, in flight once the server asked
	// for the body (100 Continue).
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n", u.RequestURI(), srv.Addr())
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("waiting for 100 Continue: %q %v", line, err)
	}
	io.WriteString(conn, "x")

	start := time.Now()
	err = stop()
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "drain timeout 500ms") {
		t.Fatalf("Shutdown: %v", err)
	}
	if took < drain || took > drain+5*time.Second {
		t.Fatalf("Shutdown took %s with http.draintimeout %s", took, drain)
	}
	// The server closed the connection without a response.
	if rest, err := io.ReadAll(r); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after shutdown: %q %v", rest, err)
	}
}
