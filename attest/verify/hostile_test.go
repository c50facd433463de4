package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/trust"
)

// TestVerifyAllAgainstEndlessTags: a registry whose tag listing never
// ends, or lists more versions than are verified, makes verify --all fail
// with an error naming the limit, reading no more pages than the limit
// needs, instead of gathering every tag first.
func TestVerifyAllAgainstEndlessTags(t *testing.T) {
	_, pub := attesttest.KeyPair(t, t.TempDir(), "k")
	for _, c := range []struct {
		perPage int
		want    string
		pages   int64
	}{
		{20, fmt.Sprintf("%d pages", target.MaxListPages), target.MaxListPages},
		{4000, fmt.Sprintf("more than %d version tags", verify.DefaultMaxVersions), 3},
	} {
		t.Run(strconv.Itoa(c.perPage), func(t *testing.T) {
			var pages atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v2/":
				case "/v2/wf/b/tags/list":
					n := int(pages.Add(1))
					tags := make([]string, c.perPage)
					for i := range tags {
						tags[i] = fmt.Sprintf("1.%d.%d", n, i)
					}
					w.Header().Set("Link", fmt.Sprintf(`</v2/wf/b/tags/list?last=1.%d.%d>; rel="next"`, n, c.perPage-1))
					json.NewEncoder(w).Encode(map[string]any{"name": "wf/b", "tags": tags})
				default:
					http.NotFound(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			repo := strings.TrimPrefix(srv.URL, "http://") + "/wf/b"
			v, err := verify.New(trust.KeyPolicy(pub, repo, trust.KeyPolicyOptions{}), attesttest.Opener(t), verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := v.VerifyAll(context.Background(), repo, verify.AllOptions{})
			if !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v (summary %+v), want ErrTooLarge naming %q", err, sum, c.want)
			}
			if n := pages.Load(); n > c.pages {
				t.Fatalf("read %d pages, want at most %d", n, c.pages)
			}
		})
	}
}
