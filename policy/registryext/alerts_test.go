package registryext_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// syncBuffer is a log destination several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the JSON log records with message msg.
func (s *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// receiver is an alert webhook receiver: it answers with status(n) for
// the n-th post (from 1) and passes on the alerts of those it accepts.
type receiver struct {
	*httptest.Server
	posts  atomic.Int32
	alerts chan registryext.Alert
	header chan http.Header
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	rc := &receiver{alerts: make(chan registryext.Alert, 100), header: make(chan http.Header, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(rc.posts.Add(1))
		code := status(n)
		w.WriteHeader(code)
		if code != http.StatusOK {
			return
		}
		var body []registryext.Alert
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body) != 1 || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("receiver: %s %s, %d alerts, %v", r.Method, r.Header.Get("Content-Type"), len(body), err)
			return
		}
		rc.header <- r.Header
		rc.alerts <- body[0]
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) registryext.Alert {
	t.Helper()
	select {
	case a := <-rc.alerts:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no alert reached the webhook")
		return registryext.Alert{}
	}
}

func metricsText(t *testing.T, srv *registryext.Server) string {
	t.Helper()
	resp, err := http.Get("http://" + srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitMetrics waits until the metrics hold every line of want (a
// delivery is counted once the receiver's answer is read, after the
// receiver has passed the alert on) and returns them.
func waitMetrics(t *testing.T, srv *registryext.Server, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := metricsText(t, srv)
		var missing []string
		for _, w := range want {
			if !strings.Contains(m, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Each refused modification of protected content raises one alert: a
// WARN log line, the alerts metric and a webhook post, all naming the
// actor, operation, repository, tag or digest and rule.
func TestAlertsOnRefusedModifications(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, func(int) int { return http.StatusOK })
	var logs syncBuffer
	srv := registrytest.Start(t, registryext.Config{
		Distribution: authConfig(t, dir, map[string]string{"ci": "s3cret"}),
		Logger:       slog.New(slog.NewJSONHandler(&logs, nil)),
		MetricsAddr:  "127.0.0.1:0",
		Alerts: registryext.Alerts{Webhook: &registryext.AlertWebhook{
			URL: rc.URL + "/api/v2/alerts", Headers: http.Header{"Authorization": {"Bearer alert-token"}},
		}},
	})
	c := newClient(t, srv.Addr(), "workflows/build")
	c.repo.Client = authClient{}
	c.user, c.password = "ci", "s3cret"
	a, b := c.manifest("a"), c.manifest("b")
	da, db := digest.FromBytes(a), digest.FromBytes(b)
	sig := "sha256-" + da.Encoded() + ".sig"

	expect(t, "create 1.0.0", c.put("1.0.0", a), http.StatusCreated, "")
	expect(t, "two signatures", c.put(sig, c.accessory(nil, signature("sig1", "s1"), signature("sig2", "s2"))), http.StatusCreated, "")
	expect(t, "a mutable tag moves", c.put("latest", b), http.StatusCreated, "")

	for _, tc := range []struct {
		name   string
		do     func() response
		labels map[string]string
	}{
		{"overwrite an immutable tag", func() response { return c.put("1.0.0", b) },
			map[string]string{"operation": "manifest-put", "tag": "1.0.0", "digest": db.String(), "rule": "semver"}},
		{"delete a protected manifest", func() response { return c.do(http.MethodDelete, "/manifests/"+da.String(), nil) },
			map[string]string{"operation": "manifest-delete", "tag": "1.0.0", "digest": da.String(), "rule": "semver"}},
		{"drop a signature from .sig", func() response { return c.put(sig, c.accessory(nil, signature("sig2", "s2"))) },
			map[string]string{"operation": "manifest-put", "tag": sig, "rule": "cosign-accessories"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.records(t, "access denied"))
			expect(t, tc.name, tc.do(), http.StatusForbidden, "DENIED")
			want := map[string]string{"alertname": registryext.AlertName, "severity": "warning", "repository": "workflows/build", "actor": "ci"}
			for k, v := range tc.labels {
				want[k] = v
			}

			got := rc.next(t)
			for k, v := range want {
				if got.Labels[k] != v {
					t.Errorf("webhook label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
				}
			}
			if got.Annotations["description"] == "" || !strings.Contains(got.Annotations["summary"], want["operation"]) || !strings.HasPrefix(got.Annotations["remote_addr"], "127.0.0.1:") {
				t.Errorf("webhook annotations %v", got.Annotations)
			}
			if time.Since(got.StartsAt) > time.Minute || got.StartsAt.After(time.Now()) {
				t.Errorf("startsAt %s", got.StartsAt)
			}
			if !strings.HasPrefix(got.GeneratorURL, "http://"+srv.Addr()+"/v2/workflows/build/manifests/") {
				t.Errorf("generatorURL %s", got.GeneratorURL)
			}
			if h := <-rc.header; h.Get("Authorization") != "Bearer alert-token" {
				t.Errorf("webhook headers %v", h)
			}

			recs := logs.records(t, "access denied")
			if len(recs) != before+1 {
				t.Fatalf("%d access denied log lines, want one more than %d", len(recs), before)
			}
			rec := recs[len(recs)-1]
			if rec["level"] != "WARN" || rec["alert"] != registryext.AlertName || rec["actor"] != "ci" || !strings.HasPrefix(rec["remote_addr"].(string), "127.0.0.1:") || rec["reason"] == "" {
				t.Errorf("log line %v", rec)
			}
			for k, v := range want {
				if k == "alertname" || k == "severity" {
					continue
				}
				if rec[k] != v {
					t.Errorf("log field %s = %v, want %q", k, rec[k], v)
				}
			}
		})
	}

	m := waitMetrics(t, srv,
		`ociwf_registry_alerts_total{operation="manifest-put",rule="semver"} 1`,
		`ociwf_registry_alerts_total{operation="manifest-delete",rule="semver"} 1`,
		`ociwf_registry_alerts_total{operation="manifest-put",rule="cosign-accessories"} 1`,
		`ociwf_registry_denials_total{rule="semver"} 2`,
		`ociwf_registry_alert_webhook_sent_total 3`,
		`ociwf_registry_alert_webhook_queue 0`,
	)
	if strings.Contains(m, `ociwf_registry_alert_webhook_dropped_total{`) {
		t.Error("alerts dropped")
	}
	if n := rc.posts.Load(); n != 3 {
		t.Errorf("%d webhook posts, want 3", n)
	}
}

// A receiver that fails first gets the alert when it recovers.
func TestAlertWebhookRetries(t *testing.T) {
	rc := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var logs syncBuffer
	srv := registrytest.Start(t, registryext.Config{
		Root: t.TempDir(), MetricsAddr: "127.0.0.1:0", Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Alerts: registryext.Alerts{Webhook: &registryext.AlertWebhook{URL: rc.URL, Threshold: 1, Backoff: 50 * time.Millisecond}},
	})
	c := newClient(t, srv.Addr(), "workflows/retry")
	a := c.manifest("a")
	expect(t, "create 1.0.0", c.put("1.0.0", a), http.StatusCreated, "")
	expect(t, "delete tag 1.0.0", c.do(http.MethodDelete, "/manifests/1.0.0", nil), http.StatusForbidden, "cannot be deleted")
	got := rc.next(t)
	if got.Labels["operation"] != "tag-delete" || got.Labels["tag"] != "1.0.0" || got.Labels["actor"] != "anonymous" || got.Labels["digest"] != digest.FromBytes(a).String() {
		t.Errorf("labels %v", got.Labels)
	}
	if n := rc.posts.Load(); n != 3 {
		t.Errorf("%d posts, want 3 (two refused)", n)
	}
	waitMetrics(t, srv, `ociwf_registry_alert_webhook_failures_total 2`, `ociwf_registry_alert_webhook_sent_total 1`)
	if n := len(logs.records(t, "alert webhook: post failed, retrying")); n != 2 {
		t.Errorf("%d failed-post log lines, want 2", n)
	}
}

// A receiver that hangs neither slows nor breaks requests: alerts past
// the queue's bound are dropped, counted and logged.
func TestAlertWebhookStuckReceiver(t *testing.T) {
	release := make(chan struct{})
	var posts atomic.Int32
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stuck.Close)
	var logs syncBuffer
	srv := registrytest.Start(t, registryext.Config{
		Root: t.TempDir(), MetricsAddr: "127.0.0.1:0", Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Alerts: registryext.Alerts{Webhook: &registryext.AlertWebhook{URL: stuck.URL, Timeout: time.Minute, QueueSize: 1}},
	})
	t.Cleanup(func() { close(release) }) // before the registry stops
	c := newClient(t, srv.Addr(), "workflows/stuck")
	a, b := c.manifest("a"), c.manifest("b")
	expect(t, "create 1.0.0", c.put("1.0.0", a), http.StatusCreated, "")
	const refused = 6
	start := time.Now()
	for i := range refused {
		expect(t, "move 1.0.0", c.put("1.0.0", b), http.StatusForbidden, "immutable")
		if i == 0 {
			// The first alert is being posted; the rest queue behind it.
			deadline := time.Now().Add(10 * time.Second)
			for posts.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("%d refused requests took %s with the receiver stuck", refused, took)
	}
	select {
	case <-release:
		t.Fatal("receiver released early")
	default:
	}
	expect(t, "a mutable push", c.put("latest", b), http.StatusCreated, "")
	m := metricsText(t, srv)
	// One posting, one queued, the rest dropped.
	for _, want := range []string{`ociwf_registry_alert_webhook_dropped_total{reason="queue-full"} 4`, `ociwf_registry_alert_webhook_queue 1`, `ociwf_registry_alerts_total{operation="manifest-put",rule="semver"} 6`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if n := len(logs.records(t, "alert webhook: alert dropped")); n != 4 {
		t.Errorf("%d dropped-alert log lines, want 4", n)
	}
	if n := len(logs.records(t, "access denied")); n != refused {
		t.Errorf("%d access denied log lines, want %d", n, refused)
	}
}

// A receiver that is not there at all: requests are answered, and
// stopping the registry does not wait longer than the webhook's timeout.
func TestAlertWebhookDeadReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/"
	ln.Close()
	srv, err := registryext.New(t.Context(), registryext.Config{Addr: "127.0.0.1:0", Root: t.TempDir(),
		Alerts: registryext.Alerts{Webhook: &registryext.AlertWebhook{URL: dead, Timeout: 200 * time.Millisecond, Backoff: 20 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	c := newClient(t, srv.Addr(), "workflows/dead")
	a, b := c.manifest("a"), c.manifest("b")
	expect(t, "create 1.0.0", c.put("1.0.0", a), http.StatusCreated, "")
	for range 3 {
		expect(t, "move 1.0.0", c.put("1.0.0", b), http.StatusForbidden, "immutable")
	}
	start := time.Now()
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("stop took %s with a dead receiver", took)
	}
}

// The configuration file's ociwf.alerts section configures the webhook.
func TestParseConfigAlerts(t *testing.T) {
	base := "version: 0.1\nstorage:\n  inmemory: {}\n"
	cfg, err := registryext.ParseConfig("r.yml", []byte(base+`ociwf:
  alerts:
    webhook:
      url: http://alertmanager:9093/api/v2/alerts
      timeout: 2s
      threshold: 3
      backoff: 500ms
      queue: 64
      headers:
        Authorization: [Bearer x]
`))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Alerts.Webhook
	if w == nil || w.URL != "http://alertmanager:9093/api/v2/alerts" || w.Timeout != 2*time.Second || w.Threshold != 3 || w.Backoff != 500*time.Millisecond || w.QueueSize != 64 || w.Headers.Get("Authorization") != "Bearer x" {
		t.Fatalf("webhook %+v", w)
	}
	if cfg, err := registryext.ParseConfig("r.yml", []byte(base)); err != nil || cfg.Alerts.Webhook != nil {
		t.Fatalf("no section: %+v %v", cfg.Alerts, err)
	}
	for _, bad := range []string{
		"ociwf:\n  alerts:\n    webhook:\n      url: alertmanager:9093\n",
		"ociwf:\n  alerts:\n    webhook:\n      url: http://a/\n      timeout: -1s\n",
		"ociwf:\n  alerts:\n    webhook:\n      url: http://a/\n      retries: 3\n",
	} {
		if _, err := registryext.ParseConfig("r.yml", []byte(base+bad)); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := registryext.New(t.Context(), registryext.Config{Addr: "127.0.0.1:0", Alerts: registryext.Alerts{Webhook: &registryext.AlertWebhook{URL: "ftp://x/"}}}); !errors.Is(err, errdef.ErrInvalid) {
		t.Errorf("New with an ftp webhook: %v", err)
	}
}
