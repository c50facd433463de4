package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/keys"
	"ociwf.dev/attest/monitor"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
)

// monitorFlags are the flags of ociwf monitor.
type monitorFlags struct {
	remote        remoteFlags
	trust         trustFlags
	sample        int
	all, once     bool
	interval      time.Duration
	jitter        time.Duration
	concurrency   int
	resultsLog    string
	webhook       string
	quarantineKey string
	metricsAddr   string
}

func (a *app) monitorCmd() *cobra.Command {
	var f monitorFlags
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.LongRunning: "true", cli.ReadOnly: "true"},
		Use:         "monitor REPOSITORY... (--key PUBLIC_KEY | --policy FILE) [--sample N | --all] [--once | --interval D]",
		Short:       "Re-verify published versions on a schedule and alert on what no longer verifies",
		Long: `Monitor re-verifies the versions of each REPOSITORY through every check of
ociwf verify (digests, signatures, attestations, SBOM, recompilation, the
lifecycle chain and, with the state file, rollback): a random --sample N of
each repository per pass, or --all (the default). Checks run --concurrency at
once, each after a random delay of at most --jitter.

Every failure is logged on stderr as one JSON line at level ERROR (fields
version, tag, check, reason, time); with --webhook URL it is also POSTed as
an Alertmanager v2 alert (retried on 5xx, 429 and connection errors); with
--quarantine-key KEY the monitor signs a quarantine lifecycle event for the
version, which verify, pull and runtimes refuse until a release
(ociwf lifecycle release) by a signer the policy allows. --results-log FILE
appends every check to a hash-chained JSON Lines log that ociwf audit verify
checks.

With --once, one pass runs and the command exits 0 when every version
verified, 3 when any failed (each named with its failed check), 1 when one
could not be checked. Otherwise passes repeat every --interval (moved by up
to a tenth of it) until SIGINT or SIGTERM, which exits 0 (with --output json,
after one document: the number of passes and the last pass's summary), and
--metrics-addr serves Prometheus metrics on /metrics (docs/operations.md).`,
		Example: `  ociwf monitor --plain-http --key cosign.pub --once --all 127.0.0.1:5000/workflows/build
  ociwf monitor --policy trust-policy.yaml --sample 20 --interval 1h --results-log monitor.jsonl \
      --webhook http://alertmanager:9093/api/v2/alerts --quarantine-key monitor.key \
      --metrics-addr 127.0.0.1:9464 registry.example.com/workflows/build registry.example.com/workflows/deploy`,
		Args: cli.Args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.monitor(cmd.Context(), &f, argv)
		},
	}
	fs := cmd.Flags()
	f.trust.register(cmd)
	f.remote.register(fs, false)
	fs.IntVar(&f.sample, "sample", 0, "versions of each repository checked per pass, picked at random")
	fs.BoolVar(&f.all, "all", false, "check every version of each repository every pass (the default)")
	fs.BoolVar(&f.once, "once", false, "run one pass and exit: 0 all verified, 3 a version failed, 1 a version could not be checked")
	fs.DurationVar(&f.interval, "interval", time.Hour, "time between passes (moved by up to a tenth of it)")
	fs.DurationVar(&f.jitter, "jitter", 0, "longest random delay before each check")
	fs.IntVar(&f.concurrency, "concurrency", 4, "versions checked at once")
	fs.StringVar(&f.resultsLog, "results-log", "", "append every check to this hash-chained JSON Lines log (ociwf audit verify checks it)")
	fs.StringVar(&f.webhook, "webhook", "", "POST each failure to this URL as an Alertmanager v2 alert")
	fs.StringVar(&f.quarantineKey, "quarantine-key", "", "cosign private key (file or KMS URI) that signs a quarantine event for each failed version; the policy must allow it the quarantine role")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (/metrics), without --once")
	return cmd
}

func (a *app) monitor(ctx context.Context, f *monitorFlags, repos []string) error {
	switch {
	case f.sample < 0:
		return cli.Usagef("--sample must be at least 1")
	case f.all && f.sample > 0:
		return cli.Usagef("--sample and --all are mutually exclusive")
	case f.concurrency < 1:
		return cli.Usagef("--concurrency must be at least 1")
	case f.jitter < 0:
		return cli.Usagef("--jitter must not be negative")
	case !f.once && f.interval <= 0:
		return cli.Usagef("--interval must be positive")
	case f.once && f.metricsAddr != "":
		return cli.Usagef("--metrics-addr goes with the long-running mode, not --once")
	}
	log := slog.New(slog.NewJSONHandler(a.LogWriter(), &slog.HandlerOptions{Level: a.Level()}))
	// One progress line per pass: cleared when the pass's last check is
	// done, before its summary is printed.
	bar := a.Progress("monitor", "versions")
	defer bar.Done()
	progress := func(done, total int, r monitor.Result) {
		bar.Update(done, total, r.Repository+":"+r.Tag, r.Outcome != monitor.OK)
	}
	opts := monitor.Options{Sample: f.sample, Concurrency: f.concurrency, Jitter: f.jitter, Logger: log, Progress: progress}
	if f.webhook != "" {
		hook, err := monitor.NewWebhook(f.webhook, monitor.WebhookOptions{})
		if err != nil {
			return cli.Usagef("--webhook: %w", err)
		}
		opts.Alerters = append(opts.Alerters, hook)
	}
	var signer *accessory.Signer
	if f.quarantineKey != "" {
		s, err := keys.LoadSigner(ctx, accessory.SignerOptions{Key: f.quarantineKey, Pass: a.passFunc()})
		if err != nil {
			return fmt.Errorf("--quarantine-key: %w", err)
		}
		defer s.Close()
		signer = s
	}
	var targets []monitor.Target
	for _, repo := range repos {
		v, err := a.verifier(ctx, &f.remote, &f.trust, repo, true)
		if err != nil {
			return err
		}
		t := monitor.Target{Repository: repo, Verifier: v}
		if signer != nil {
			o, err := f.remote.opener(a.Stdin)
			if err != nil {
				return err
			}
			rec, err := govern.New(v, accessory.NewRegistry(o, accessory.RegistryOptions{Logger: a.Logger()}), govern.Options{Logger: a.Logger()})
			if err != nil {
				return err
			}
			t.Quarantine = monitor.Recorder{Recorder: rec, Signer: signer, Actor: "ociwf monitor"}
		}
		targets = append(targets, t)
	}
	if f.resultsLog != "" {
		l, err := audit.Open(f.resultsLog)
		if err != nil {
			return err
		}
		defer l.Close()
		opts.Results = l
	}
	if !f.once {
		opts.Metrics = monitor.NewMetrics()
	}
	m, err := monitor.NewTargets(targets, opts)
	if err != nil {
		return err
	}
	if f.once {
		return a.monitorOnce(ctx, m)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.metricsAddr != "" {
		shutdown, err := serveMetrics(f.metricsAddr, opts.Metrics.Handler(), log)
		if err != nil {
			return err
		}
		defer shutdown()
	}
	passes := 0
	var last *monitor.Summary
	err = m.Run(ctx, f.interval, func(s *monitor.Summary) {
		passes, last = passes+1, s
		if a.Output == "json" {
			return // one document, at the end
		}
		fmt.Fprintf(a.Stdout, "%s pass: %d of %d versions checked, %d passed, %d failed, %d errors in %s\n",
			s.Started.Format(time.RFC3339), s.Checked, s.Versions, s.Passed, s.Failed, s.Errors, s.Duration.Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	if a.Output == "json" {
		a.EmitJSON(struct {
			Passes   int              `json:"passes"`
			Last     *monitor.Summary `json:"last"`
			ExitCode int              `json:"exitCode"`
		}{passes, last, 0})
	}
	return nil
}

// monitorOnce runs one pass and prints its summary.
func (a *app) monitorOnce(ctx context.Context, m *monitor.Monitor) error {
	sum, passErr := m.Pass(ctx)
	if sum == nil {
		return passErr
	}
	var err error
	switch {
	case sum.Failed > 0:
		first := sum.Failures()[0]
		err = fmt.Errorf("monitor: %d of %d versions failed verification, first %s (tag %s): %s check: %w",
			sum.Failed, sum.Checked, first.Version(), first.Tag, first.Check, errdef.ErrVerification)
	case sum.Errors > 0:
		err = fmt.Errorf("monitor: %d versions or repositories could not be checked", sum.Errors)
	case passErr != nil:
		err = passErr
	}
	out := struct {
		*monitor.Summary
		Error    string `json:"error,omitempty"`
		ExitCode int    `json:"exitCode"`
	}{Summary: sum, ExitCode: cli.ExitCode(err)}
	if err != nil {
		out.Error = err.Error()
	}
	a.Emit(out, func(w io.Writer) {
		for _, r := range sum.Results {
			switch r.Outcome {
			case monitor.OK:
				fmt.Fprintf(w, "  ok    %s:%s %s\n", r.Repository, r.Tag, r.Digest)
			case monitor.Failed:
				q := ""
				if r.Quarantined {
					q = " (quarantined)"
				} else if r.QuarantineError != "" {
					q = " (quarantine not recorded: " + r.QuarantineError + ")"
				}
				fmt.Fprintf(w, "  FAIL  %s (tag %s): %s check%s\n        %s\n", r.Version(), r.Tag, r.Check, q, r.Reason)
			default:
				fmt.Fprintf(w, "  ERROR %s: %s\n", r.Version(), r.Reason)
			}
		}
		fmt.Fprintf(w, "%d of %d versions checked: %d passed, %d failed, %d errors in %s\n",
			sum.Checked, sum.Versions, sum.Passed, sum.Failed, sum.Errors, sum.Duration.Round(time.Millisecond))
	})
	if passErr != nil && err != passErr {
		fmt.Fprintf(a.Stderr, "ociwf: %v\n", passErr)
	}
	if err != nil {
		return cli.Reported{Err: err}
	}
	return nil
}

// serveMetrics serves h on addr's /metrics with the registry's default
// timeouts (30s for a request's headers, 2m idle; ociwf-registry's
// http.timeouts) and returns the function that stops it.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		WriteTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "reason", err.Error())
		}
	}()
	log.Info("serving metrics", "address", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
