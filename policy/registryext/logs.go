package registryext

import (
	"context"
	"io"
	"log/slog"

	"github.com/sirupsen/logrus"
)

// RouteDistributionLogs sends the logs of the embedded Distribution registry,
// which writes through logrus' process-wide standard logger, to log instead.
// Client errors (4xx responses, such as a HEAD for a tag that does not exist
// yet) are demoted to debug; server errors stay errors. Call it once per
// process, before starting servers; a nil log silences Distribution.
func RouteDistributionLogs(log *slog.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.ReplaceHooks(logrus.LevelHooks{})
	if log == nil {
		std.SetLevel(logrus.PanicLevel)
		return
	}
	std.SetLevel(logrus.InfoLevel)
	std.AddHook(slogHook{log})
}

type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelInfo
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
		if status, ok := e.Data["http.response.status"].(int); ok && status < 500 {
			level = slog.LevelDebug
		}
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	case e.Level >= logrus.DebugLevel:
		level = slog.LevelDebug
	}
	if !h.log.Enabled(context.Background(), level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("component", "distribution"))
	for k, v := range e.Data {
		attrs = append(attrs, slog.Any(k, v))
	}
	h.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}
