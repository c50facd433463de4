package registryext_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// authConfig is a Distribution configuration storing under dir with
// htpasswd auth for users (name: password).
func authConfig(t *testing.T, dir string, users map[string]string) *configuration.Configuration {
	t.Helper()
	var htpasswd bytes.Buffer
	for name, password := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&htpasswd, "%s:%s\n", name, hash)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, htpasswd.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := configuration.Parse(strings.NewReader(`version: 0.1
storage:
  filesystem:
    rootdirectory: ` + filepath.Join(dir, "data") + `
  delete:
    enabled: true
auth:
  htpasswd:
    realm: ociwf
    path: ` + path + `
http:
  secret: not-a-real-secret
`))
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// rawResponse is the status, headers and body of a raw request.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// raw sends target (the request line's target, unnormalised) with method,
// headers and body over a fresh connection, so no client rewrites what a
// hostile client would send.
func raw(t *testing.T, addr, method, target string, header map[string]string, body string) rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, addr, len(body))
	for k, v := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n" + body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %.60q: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, string(b)}
}

func basic(user, password string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}
}

// verifyLog checks the audit log at path is valid UTF-8 with an intact
// chain of entries entries, and returns its lines.
func verifyLog(t *testing.T, path string, entries int) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(b))
	if err != nil || rep.Broken != nil || rep.Entries != entries {
		t.Fatalf("audit log: %+v %v\n%s", rep, err, b)
	}
	if !utf8.Valid(b) {
		t.Fatalf("audit log is not UTF-8:\n%q", b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// Requests anyone can send, without credentials, with hostile paths,
// queries and user names, leave an audit log that verifies, and the
// registry starts again on it.
func TestAuditHostileRequests(t *testing.T) {
	dir := t.TempDir()
	evil := "ev\xffil<&>\u2028\x01\"\\"
	conf := authConfig(t, dir, map[string]string{"ci": "s3cret", evil: "pw"})
	log := filepath.Join(dir, "audit.jsonl")
	srv, stop := serveStoppable(t, registryext.Config{Distribution: conf, AuditLog: log})
	addr := srv.Addr()

	upload := raw(t, addr, http.MethodPost, "/v2/priv/blobs/uploads/", basic("ci", "s3cret"), "")
	if upload.status != http.StatusAccepted {
		t.Fatalf("start an upload: %+v", upload)
	}
	session := strings.TrimPrefix(upload.header.Get("Location"), "http://"+addr)
	huge := strings.Repeat("%01", 200_000)
	cases := []struct {
		method, target string
		header         map[string]string
		status         int
	}{
		{http.MethodPost, "/v2/priv/blobs/uploads/?digest=%FF", nil, http.StatusUnauthorized},
		{http.MethodPost, "/v2/priv/blobs/uploads/?digest=%00%01%1F%7F%E2%80%A8%E2%80%A9%3C%26%3E%22%5C%5Cu0000", nil, http.StatusUnauthorized},
		{http.MethodPost, "/v2/priv/blobs/uploads/?digest=\xff\xfe", nil, http.StatusUnauthorized},
		{http.MethodPost, "/v2/priv/blobs/uploads/?digest=" + huge, nil, http.StatusUnauthorized},
		{http.MethodPut, "/v2/%FF/manifests/latest", nil, 0},
		{http.MethodPut, "/v2/priv%00/manifests/%3Cx%3E", nil, 0},
		{http.MethodDelete, "/v2/" + huge + "/blobs/x", nil, 0},
		{http.MethodPatch, "/v2/priv/blobs/uploads/%ED%A0%80", nil, 0},
		{http.MethodPost, "/v2/priv/blobs/uploads/?digest=%FF", basic("\xff\x00", "x"), http.StatusUnauthorized},
		{http.MethodPost, "/v2/priv/blobs/uploads/?digest=%FF", basic(evil, "pw"), http.StatusAccepted},
		{http.MethodPut, session + "&digest=%FF&digest=%FE", basic("ci", "s3cret"), http.StatusBadRequest},
	}
	for _, c := range cases {
		got := raw(t, addr, c.method, c.target, c.header, "")
		if c.status != 0 && got.status != c.status {
			t.Errorf("%s %.60q: %d %s, want %d", c.method, c.target, got.status, got.body, c.status)
		}
	}
	lines := verifyLog(t, log, 1+len(cases))
	if !strings.Contains(lines[1], `"repository":"priv","operation":"blob-upload","asked":"\\xff","status":401,"outcome":"failed"`) {
		t.Errorf("the first probe is recorded as\n%s", lines[1])
	}
	if !strings.Contains(lines[10], `"actor":"ev\\xffil\u003c\u0026\u003e\u2028\u0001\"\\"`) {
		t.Errorf("the hostile user is recorded as\n%s", lines[10])
	}

	// The registry starts again on the log it wrote and goes on with it.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	srv = registrytest.Start(t, registryext.Config{Distribution: conf, AuditLog: log})
	raw(t, srv.Addr(), http.MethodPost, "/v2/priv/blobs/uploads/?digest=%FF", nil, "")
	verifyLog(t, log, 2+len(cases))
}

// entryOf returns the one audit line containing all of want.
func entryOf(t *testing.T, lines []string, want ...string) string {
	t.Helper()
	var found []string
	for _, l := range lines {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d entries with %q in\n%s", len(found), want, strings.Join(lines, "\n"))
	}
	return found[0]
}

// The audit log names what a request committed, as Distribution answered
// it, not what the query claimed; a digest a request named without
// committing it is recorded as asked.
func TestAuditRecordsWhatWasCommitted(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	srv := registrytest.Start(t, registryext.Config{Root: filepath.Join(dir, "root"), AuditLog: log})
	addr := srv.Addr()
	content := "committed"
	committed, claimed := digest.FromString(content), digest.FromString("claimed")

	start := func() string {
		t.Helper()
		r := raw(t, addr, http.MethodPost, "/v2/wf/a/blobs/uploads/?digest="+claimed.String(), nil, "")
		if r.status != http.StatusAccepted {
			t.Fatalf("start an upload: %+v", r)
		}
		return strings.TrimPrefix(r.header.Get("Location"), "http://"+addr)
	}
	octets := map[string]string{"Content-Type": "application/octet-stream"}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	// The query names one digest, the form body the one Distribution reads.
	session := start()
	r := raw(t, addr, http.MethodPatch, session, octets, content)
	if r.status != http.StatusAccepted {
		t.Fatalf("PATCH: %+v", r)
	}
	session = strings.TrimPrefix(r.header.Get("Location"), "http://"+addr)
	r = raw(t, addr, http.MethodPut, session+"&digest="+claimed.String(), form, "digest="+committed.String())
	if r.status != http.StatusCreated || r.header.Get("Docker-Content-Digest") != committed.String() {
		t.Fatalf("PUT with a form body: %+v", r)
	}
	// A failed commit names what it asked for, labelled so.
	session = start()
	if r := raw(t, addr, http.MethodPut, session+"&digest="+claimed.String(), octets, content); r.status != http.StatusBadRequest {
		t.Fatalf("PUT of the wrong content: %+v", r)
	}
	// A failed one with a form body says the query's digest may not be
	// the one Distribution read.
	session = start()
	if r := raw(t, addr, http.MethodPut, session+"&digest="+claimed.String(), form, "digest="+digest.FromString("other").String()); r.status != http.StatusBadRequest {
		t.Fatalf("PUT of a form naming the wrong digest: %+v", r)
	}
	// Cancelling an upload is not an upload.
	if r := raw(t, addr, http.MethodDelete, start()+"&digest="+claimed.String(), nil, ""); r.status != http.StatusNoContent {
		t.Fatalf("cancel an upload: %+v", r)
	}
	// A mount commits the blob it names.
	if r := raw(t, addr, http.MethodPost, "/v2/wf/b/blobs/uploads/?mount="+committed.String()+"&from=wf/a", nil, ""); r.status != http.StatusCreated {
		t.Fatalf("mount: %+v", r)
	}
	// A manifest pushed under a digest it does not have, a delete of what
	// is not there.
	if r := raw(t, addr, http.MethodPut, "/v2/wf/a/manifests/"+claimed.String(), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, `{"schemaVersion":2}`); r.status < 400 {
		t.Fatalf("manifest under a wrong digest: %+v", r)
	}
	if r := raw(t, addr, http.MethodDelete, "/v2/wf/a/blobs/"+claimed.String(), nil, ""); r.status != http.StatusNotFound {
		t.Fatalf("delete a missing blob: %+v", r)
	}
	if r := raw(t, addr, http.MethodDelete, "/v2/wf/a/blobs/"+committed.String(), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("delete the blob: %+v", r)
	}

	lines := verifyLog(t, log, 13)
	entryOf(t, lines, `"repository":"wf/a","operation":"blob-upload-cancel","status":204,"outcome":"ok"`)
	entryOf(t, lines, `"repository":"wf/a","operation":"blob-upload","digest":"`+committed.String()+`","status":201,"outcome":"ok"`)
	entryOf(t, lines, `"repository":"wf/a","operation":"blob-upload","asked":"`+claimed.String()+`","status":400,"outcome":"failed","prev"`)
	entryOf(t, lines, `"asked":"`+claimed.String()+`","status":400,"outcome":"failed","message":"the body is a form, whose digest Distribution reads before the query's; asked is the query's"`)
	entryOf(t, lines, `"repository":"wf/b","operation":"blob-upload","digest":"`+committed.String()+`","status":201,"outcome":"ok"`)
	entryOf(t, lines, `"operation":"manifest-put","asked":"`+claimed.String()+`","status":400,"outcome":"failed"`)
	entryOf(t, lines, `"operation":"blob-delete","asked":"`+claimed.String()+`","status":404,"outcome":"failed"`)
	entryOf(t, lines, `"operation":"blob-delete","digest":"`+committed.String()+`","status":202,"outcome":"ok"`)
	// Starting an upload commits nothing, whatever its query says.
	if n := strings.Count(strings.Join(lines, "\n"), `"asked":"`+claimed.String()+`","status":202,"outcome":"ok"`); n != 4 {
		t.Errorf("%d upload starts record the digest their query named as asked, want 4", n)
	}
	for _, l := range lines {
		if strings.Contains(l, `"digest":"`+claimed.String()+`"`) {
			t.Errorf("a digest nothing committed is recorded as the entry's digest:\n%s", l)
		}
	}
}

// The registry does not append to a broken audit log; the error names the
// first break and what to do.
func TestAuditBrokenLogRefused(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	srv := registrytest.Start(t, registryext.Config{AuditLog: log})
	for i := 0; i < 3; i++ {
		raw(t, srv.Addr(), http.MethodPost, "/v2/wf/a/blobs/uploads/", nil, "")
	}
	lines := verifyLog(t, log, 3)
	lines[1] = strings.Replace(lines[1], `"wf/a"`, `"wf/b"`, 1)
	os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o640)
	_, err := registryext.New(t.Context(), registryext.Config{Addr: "127.0.0.1:0", AuditLog: log})
	if !errors.Is(err, errdef.ErrVerification) || !strings.Contains(err.Error(), log+" line 2: hash") || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("a broken audit log: %v", err)
	}
}
