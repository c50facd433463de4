package monitor

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ociwf.dev/policy/lifecycle"
)

// Metrics are a Monitor's Prometheus metrics, in a registry of their own:
//
//	ociwf_monitor_checks_total{outcome}            checks by outcome (ok, failed, error)
//	ociwf_monitor_failures_total{check}            failed checks by the verifier's check
//	ociwf_monitor_check_duration_seconds           histogram of one version's verification
//	ociwf_monitor_seconds_since_last_full_pass     since the last pass that checked every version (-1: none yet)
//	ociwf_monitor_versions{state}                  versions per lifecycle state, as the last pass saw them
type Metrics struct {
	reg      *prometheus.Registry
	checks   *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration prometheus.Histogram
	states   *prometheus.GaugeVec

	mu       sync.Mutex
	lastFull time.Time
}

// NewMetrics returns the metrics, registered in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ociwf_monitor_checks_total", Help: "Versions checked by the integrity monitor, by outcome (ok, failed, error).",
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ociwf_monitor_failures_total", Help: "Failed integrity checks, by the verifier's check that failed.",
		}, []string{"check"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ociwf_monitor_check_duration_seconds", Help: "Time to re-verify one version.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ociwf_monitor_versions", Help: "Versions per lifecycle state, as the last pass saw them.",
		}, []string{"state"}),
	}
	since := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ociwf_monitor_seconds_since_last_full_pass", Help: "Seconds since the last pass that checked every version; -1 before the first.",
	}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.lastFull.IsZero() {
			return -1
		}
		return time.Since(m.lastFull).Seconds()
	})
	m.reg.MustRegister(m.checks, m.failures, m.duration, m.states, since)
	for _, o := range []string{OK, Failed, Error} {
		m.checks.WithLabelValues(o)
	}
	return m
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) check(r Result) {
	m.checks.WithLabelValues(r.Outcome).Inc()
	if r.Outcome == Failed {
		m.failures.WithLabelValues(r.Check).Inc()
	}
	if r.Tag != "" {
		m.duration.Observe(r.Duration.Seconds())
	}
}

// pass records a pass; full is true when it checked every version.
func (m *Metrics) pass(s *Summary, states map[lifecycle.State]int, full bool) {
	for _, st := range lifecycle.States() {
		m.states.WithLabelValues(string(st)).Set(float64(states[st]))
	}
	if full && s.Errors == 0 {
		m.mu.Lock()
		m.lastFull = s.Started.Add(s.Duration)
		m.mu.Unlock()
	}
}
