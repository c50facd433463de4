package registryext

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	events "github.com/docker/go-events"

	"ociwf.dev/ociwf/errdef"
)

// AlertName is the alertname label of the alert the registry raises when
// it refuses a request (a Denial): an overwrite or retag of a protected
// tag, a delete of protected content, an accessory rewrite that drops
// entries, a lifecycle accessory deletion or a pull the lifecycle pull
// rule refuses.
const AlertName = "OciwfAccessDenied"

// Alerts configures what the registry does, beyond its log line and
// metric, when it refuses a request. The zero value raises alerts in the
// log and the metrics only.
type Alerts struct {
	// Webhook, if set, receives every alert.
	Webhook *AlertWebhook
}

// AlertWebhook is an HTTP endpoint alerts are POSTed to, one alert per
// request, as an Alertmanager v2 API body (a JSON array of Alert, of
// length one; POST it to Alertmanager's /api/v2/alerts). Delivery is
// asynchronous: a refused request never waits for it. Alerts wait in a
// queue of QueueSize; when it is full, new alerts are dropped, counted
// (ociwf_registry_alert_webhook_dropped_total) and logged. Failed posts
// are retried as Distribution's notification endpoints retry
// (go-events' RetryingSink with a Breaker): the first Threshold failures
// in a row are retried at once, then one attempt every Backoff, until the
// alert is delivered or the server shuts down. The fields mean what they
// mean in Distribution's notifications.endpoints configuration.
type AlertWebhook struct {
	// URL is the http or https URL POSTed to.
	URL string
	// Timeout bounds one POST; zero means DefaultAlertTimeout. It also
	// bounds how long Shutdown waits for queued alerts to go out.
	Timeout time.Duration
	// Threshold is the number of failures in a row after which posts
	// back off; zero means DefaultAlertThreshold.
	Threshold int
	// Backoff is the wait between posts once Threshold is reached; zero
	// means DefaultAlertBackoff.
	Backoff time.Duration
	// Headers are added to every POST (an Authorization header, say).
	Headers http.Header
	// QueueSize bounds the alerts waiting to be posted; zero means
	// DefaultAlertQueueSize.
	QueueSize int
}

// Defaults of AlertWebhook: Distribution's for its notification
// endpoints, and a queue bound of ociwf's own.
const (
	DefaultAlertTimeout   = time.Second
	DefaultAlertThreshold = 10
	DefaultAlertBackoff   = time.Second
	DefaultAlertQueueSize = 1024
)

// validate checks w and returns it with its defaults filled in.
func (w AlertWebhook) validate() (AlertWebhook, error) {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return w, fmt.Errorf("alert webhook: url %q is not an http or https URL: name where alerts are POSTed, such as http://alertmanager:9093/api/v2/alerts: %w", w.URL, errdef.ErrInvalid)
	}
	if w.Timeout < 0 || w.Backoff < 0 || w.Threshold < 0 || w.QueueSize < 0 {
		return w, fmt.Errorf("alert webhook: timeout, backoff, threshold and queue must not be negative: %w", errdef.ErrInvalid)
	}
	if w.Timeout == 0 {
		w.Timeout = DefaultAlertTimeout
	}
	if w.Threshold == 0 {
		w.Threshold = DefaultAlertThreshold
	}
	if w.Backoff == 0 {
		w.Backoff = DefaultAlertBackoff
	}
	if w.QueueSize == 0 {
		w.QueueSize = DefaultAlertQueueSize
	}
	w.Headers = w.Headers.Clone()
	return w, nil
}

// Alert is one alert as Alertmanager's v2 API takes it (postableAlert).
// Labels are alertname (AlertName), severity ("warning"), repository,
// operation (the audit log's: manifest-put, tag-delete, manifest-delete,
// blob-delete, manifest-get, ...), rule, actor (the user Distribution
// authenticated, or "anonymous") and, when the denial names them, tag and
// digest. Annotations are summary, description (the denial's message)
// and remote_addr (the client's address).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// anonymous is the actor of a request Distribution did not authenticate.
const anonymous = "anonymous"

// alert raises the alert for a request the middleware refused: a log line
// at WARN, the denial metric and, with a webhook configured, a post.
func (s *Server) alert(r *http.Request, st *requestState, d *Denial) {
	rt, ok := parseRoute(s.prefix, r.URL.Path)
	if !ok {
		rt = route{kind: "unknown", ref: r.URL.Path}
	}
	op, _, _ := operationOf(r, rt)
	user := st.user()
	if user == "" {
		user = anonymous
	}
	remote := r.RemoteAddr
	now := time.Now().UTC()
	repo := d.Repository
	if repo == "" {
		repo = rt.repo
	}
	s.metrics.denied(d.Rule, op)
	s.log.Warn("access denied", "alert", AlertName, "actor", user, "remote_addr", remote, "operation", op,
		"repository", repo, "tag", d.Tag, "digest", d.Digest.String(), "rule", d.Rule, "reason", d.Message)
	if s.webhook == nil {
		return
	}
	labels := map[string]string{"alertname": AlertName, "severity": "warning", "repository": repo, "operation": op, "rule": d.Rule, "actor": user}
	if d.Tag != "" {
		labels["tag"] = d.Tag
	}
	if d.Digest != "" {
		labels["digest"] = d.Digest.String()
	}
	what := repo
	switch {
	case d.Tag != "":
		what += ":" + d.Tag
	case d.Digest != "":
		what += "@" + d.Digest.String()
	}
	s.webhook.send(Alert{
		Labels: labels,
		Annotations: map[string]string{
			"summary":     fmt.Sprintf("ociwf registry refused %s of %s by %s (rule %s)", op, what, user, d.Rule),
			"description": d.Message,
			"remote_addr": remote,
		},
		StartsAt:     now,
		GeneratorURL: s.base + r.URL.Path,
	})
}

// webhook delivers alerts to an AlertWebhook: a bounded queue in front of
// Distribution's retry machinery (go-events' RetryingSink and Breaker,
// which its notification endpoints are built of) in front of a sink that
// POSTs the Alertmanager body. Distribution's own Endpoint cannot serve:
// it wraps every event in its notification envelope, its queue is
// unbounded, and it registers each endpoint in process-wide metrics.
type webhook struct {
	cfg     AlertWebhook
	log     *slog.Logger
	metrics *metrics
	post    *alertPoster
	retry   *events.RetryingSink

	mu     sync.Mutex // guards closed and sends on queue
	closed bool
	queue  chan Alert
	done   chan struct{} // closed when run returns
}

func newWebhook(cfg AlertWebhook, log *slog.Logger, m *metrics) *webhook {
	post := newAlertPoster(cfg, log, m)
	w := &webhook{
		cfg: cfg, log: log, metrics: m, post: post,
		retry: events.NewRetryingSink(post, events.NewBreaker(cfg.Threshold, cfg.Backoff)),
		queue: make(chan Alert, cfg.QueueSize),
		done:  make(chan struct{}),
	}
	go w.run()
	return w
}

// send queues a, or drops it when the queue is full or the webhook
// closed; it never blocks.
func (w *webhook) send(a Alert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.dropped(a, "shutdown")
		return
	}
	select {
	case w.queue <- a:
		w.metrics.alertQueue.Inc()
	default:
		w.dropped(a, "queue-full")
	}
}

func (w *webhook) dropped(a Alert, reason string) {
	w.metrics.alertDropped.WithLabelValues(reason).Inc()
	w.log.Warn("alert webhook: alert dropped", "reason", reason, "url", w.cfg.URL, "queue", w.cfg.QueueSize,
		"repository", a.Labels["repository"], "operation", a.Labels["operation"], "rule", a.Labels["rule"])
}

func (w *webhook) run() {
	defer close(w.done)
	for a := range w.queue {
		w.metrics.alertQueue.Dec()
		if err := w.retry.Write(a); err != nil {
			w.dropped(a, "shutdown")
		}
	}
}

// close stops taking alerts and gives those queued until ctx ends or the
// webhook's timeout passes, whichever is first, to go out; the rest are
// dropped.
func (w *webhook) close(ctx context.Context) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()
	t := time.NewTimer(w.cfg.Timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-ctx.Done():
	case <-t.C:
	}
	_ = w.retry.Close() // ends a retry in progress; the rest drain as dropped
	w.post.cancel()     // and a post in flight
	<-w.done
	_ = w.post.Close()
}

// alertPoster is the sink that POSTs one alert, once.
type alertPoster struct {
	url     string
	headers http.Header
	client  *http.Client
	ctx     context.Context // ends at close
	cancel  context.CancelFunc
	log     *slog.Logger
	metrics *metrics
}

func newAlertPoster(cfg AlertWebhook, log *slog.Logger, m *metrics) *alertPoster {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	ctx, cancel := context.WithCancel(context.Background())
	return &alertPoster{url: cfg.URL, headers: cfg.Headers, log: log, metrics: m, ctx: ctx, cancel: cancel,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout}}
}

// maxReceiverReply bounds what is read of a receiver's reply.
const maxReceiverReply = 64 << 10

// Write posts event, an Alert; any answer but 2xx is a failure.
func (p *alertPoster) Write(event events.Event) error {
	a, ok := event.(Alert)
	if !ok {
		return fmt.Errorf("alert webhook: %T is not an alert", event)
	}
	body, err := json.Marshal([]Alert{a})
	if err != nil {
		return fmt.Errorf("alert webhook: encode alert: %w", err)
	}
	err = p.do(body)
	if err != nil {
		if p.ctx.Err() != nil {
			return events.ErrSinkClosed // shutting down: no retry
		}
		p.metrics.alertFailures.Inc()
		p.log.Warn("alert webhook: post failed, retrying", "url", p.url, "err", err,
			"repository", a.Labels["repository"], "operation", a.Labels["operation"], "rule", a.Labels["rule"])
		return err
	}
	p.metrics.alertsSent.Inc()
	return nil
}

func (p *alertPoster) do(body []byte) error {
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post %s: %w", p.url, err)
	}
	for k, v := range p.headers {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReceiverReply))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post %s: %w", p.url, &receiverError{resp.Status})
	}
	return nil
}

// receiverError is a receiver's answer other than 2xx.
type receiverError struct{ status string }

func (e *receiverError) Error() string { return "the receiver answered " + e.status }

// Close releases the poster's connections.
func (p *alertPoster) Close() error {
	p.cancel()
	p.client.CloseIdleConnections()
	return nil
}

// baseURL is the registry's URL for alerts' generatorURL: Distribution's
// http.host when set (the address clients use), else the listen address.
func baseURL(host string, tls bool, ln net.Listener) string {
	if host != "" {
		if u, err := url.Parse(host); err == nil && u.Scheme != "" && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	if ln.Addr().Network() == "unix" {
		return scheme + "+unix://" + url.PathEscape(ln.Addr().String())
	}
	return scheme + "://" + ln.Addr().String()
}
