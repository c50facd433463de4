package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"oras.land/oras-go/v2/registry/remote/retry"

	"ociwf.dev/ociwf/errdef"
)

// AlertName is the alertname label of the webhook's alerts.
const AlertName = "OciwfIntegrityFailure"

// Alert is one alert of Alertmanager's v2 API (POST /api/v2/alerts takes
// an array of them).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertFor returns r as an Alertmanager alert: labels alertname,
// repository, digest, tag and check; annotations summary and
// description.
func AlertFor(r Result, generatorURL string) Alert {
	labels := map[string]string{"alertname": AlertName, "repository": r.Repository, "check": r.Check}
	if r.Digest != "" {
		labels["digest"] = r.Digest
	}
	if r.Tag != "" {
		labels["tag"] = r.Tag
	}
	desc := r.Reason
	if r.Quarantined {
		desc += " (the version was quarantined)"
	}
	return Alert{
		Labels:       labels,
		Annotations:  map[string]string{"summary": fmt.Sprintf("%s failed the %s check", r.Version(), r.Check), "description": desc},
		StartsAt:     r.Time,
		GeneratorURL: generatorURL,
	}
}

// WebhookOptions tune a Webhook.
type WebhookOptions struct {
	// Timeout bounds one alert's delivery, retries included; 0 means 30s.
	Timeout time.Duration
	// MaxRetries bounds the retries after the first attempt; 0 means 5.
	MaxRetries int
	// MinWait and MaxWait bound the wait between attempts, which doubles
	// from MinWait; 0 means 250ms and 5s.
	MinWait, MaxWait time.Duration
	// GeneratorURL is the alerts' generatorURL.
	GeneratorURL string
	// Transport is the HTTP transport under the retries; nil means
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Webhook POSTs each alert, as a JSON array of one Alertmanager v2 alert,
// to a URL (an Alertmanager's /api/v2/alerts, or any receiver taking that
// body). A delivery is retried on a connection error, a 5xx or a 429,
// with exponential backoff capped at MaxWait, until MaxRetries or Timeout;
// any other non-2xx status fails at once. The retries are oras-go's
// retry.Transport, with a policy that also retries refused connections
// (a receiver restarting).
type Webhook struct {
	url    string
	client *http.Client
	opts   WebhookOptions
}

// NewWebhook returns a Webhook posting to url (http or https).
func NewWebhook(url string, opts WebhookOptions) (*Webhook, error) {
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return nil, fmt.Errorf("webhook %q: want an http or https URL: %w", url, errdef.ErrInvalid)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 5
	}
	if opts.MinWait <= 0 {
		opts.MinWait = 250 * time.Millisecond
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 5 * time.Second
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	policy := &retry.GenericPolicy{
		Retryable: retryable,
		Backoff:   retry.ExponentialBackoff(opts.MinWait, 2, 0.1),
		MinWait:   opts.MinWait,
		MaxWait:   opts.MaxWait,
		MaxRetry:  opts.MaxRetries,
	}
	tr := &retry.Transport{Base: base, Policy: func() retry.Policy { return policy }}
	return &Webhook{url: url, client: &http.Client{Transport: tr}, opts: opts}, nil
}

// retryable retries connection errors, 5xx and 429 (and 408).
func retryable(resp *http.Response, err error) (bool, error) {
	if err != nil {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, io.ErrUnexpectedEOF) {
			return true, nil
		}
		return false, err
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500, nil
}

// Alert implements Alerter.
func (w *Webhook) Alert(ctx context.Context, r Result) error {
	body, err := json.Marshal([]Alert{AlertFor(r, w.opts.GeneratorURL)})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	// bytes.Reader sets GetBody, so the retry transport can resend it.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s: %s", req.URL.Redacted(), resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
