package registryext

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the registry's Prometheus metrics, in a registry of their
// own (one per Server).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	denials   *prometheus.CounterVec
	audited   prometheus.Counter
	auditErrs prometheus.Counter
	referrers prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "requests_total",
			Help: "HTTP requests served, by method and status code.",
		}, []string{"method", "code"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "denials_total",
			Help: "Requests refused by an immutability rule, by rule.",
		}, []string{"rule"}),
		audited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "audit_entries_total",
			Help: "Entries appended to the audit log.",
		}),
		auditErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "audit_errors_total",
			Help: "Mutating requests that could not be appended to the audit log; alert on any.",
		}),
		referrers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ociwf", Subsystem: "registry", Name: "referrers_served_total",
			Help: "Referrers API responses served.",
		}),
	}
	m.reg.MustRegister(m.requests, m.denials, m.audited, m.auditErrs, m.referrers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) request(method string, code int) {
	m.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
}

func (m *metrics) denied(rule string) { m.denials.WithLabelValues(rule).Inc() }

// handler serves the metrics.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
