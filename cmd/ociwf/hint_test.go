package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
)

// A failing registry gets the advice that fits the command: a writer is
// told a rerun writes nothing twice, a reader only to rerun.
func TestUnavailableHintFitsTheCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	keys := newKeys(t)
	ref := host + "/team/wf:1.0.0"
	for _, c := range []struct {
		args   []string
		writes bool
	}{
		{[]string{"push", samples + "build-test-release.yaml", ref}, true},
		{[]string{"verify", ref, "--key", keys + ".pub"}, false},
		{[]string{"pull", ref, "--key", keys + ".pub"}, false},
		{[]string{"status", ref, "--key", keys + ".pub"}, false},
	} {
		_, stderr, code := runCLI(t, append(c.args, "--plain-http", "--retries", "0")...)
		if code != cli.ExitError || !strings.Contains(stderr, "rerun the command once it answers again") || strings.Contains(stderr, "written twice") == !c.writes {
			t.Errorf("%s against a failing registry: exit %d\n%s", c.args[0], code, stderr)
		}
	}
}
