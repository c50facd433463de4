//lint:file-ignore SA1019 Distribution's S3 driver is built on aws-sdk-go v1; the create-only write goes through that driver's own client and settings

package registryext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/service/s3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
	s3driver "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/immutability"
)

// Create-only tag links.
//
// Distribution records a tag as one small file, the tag's current link
// (<root>/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link,
// holding the digest), and overwrites it to move the tag. ociwf's storage
// middleware (registered with Distribution as MiddlewareName) wraps the
// storage driver so that the link of an immutable tag is written with the
// storage's own create-only write where it has one: link(2) of a
// complete temporary file on a filesystem, a PUT with If-None-Match: * on
// S3. Of two writers that reach the storage with different digests only
// one creates the link, whatever any lock says; the other gets a
// *TagTakenError, which the registry answers with 403 DENIED. This holds
// beneath the coordination locks, so it also covers a replica in the
// wrong coordination mode, and a Redis lease that lapsed inside the tag
// write. Append-only tags move, and deletes are ordered against writes,
// by the coordination locks alone.

// OptionCreateOnly is the storage middleware option that carries the
// state ociwf's storage middleware needs; it cannot come from YAML.
const OptionCreateOnly = "createOnly"

func init() {
	if err := storagemiddleware.Register(MiddlewareName, newCreateOnlyDriver); err != nil {
		panic(err)
	}
}

// TagTakenError is a create-only write of an immutable tag's link that
// found the link already there, naming another digest.
type TagTakenError struct {
	Repository, Tag string
	// Digest is what the tag names; Want is what the write wanted.
	Digest, Want digest.Digest
}

func (e *TagTakenError) Error() string {
	return fmt.Sprintf("tag %s of %s was created naming %s while this write of %s was under way; the storage refused to overwrite it", e.Tag, e.Repository, e.Digest, e.Want)
}

// Is makes a TagTakenError match errdef.ErrImmutable.
func (e *TagTakenError) Is(target error) bool { return target == errdef.ErrImmutable }

// createOnly is the state ociwf's storage middleware shares with the
// server: the rules that say which tags are immutable, the filesystem
// storage's root, and what the middleware chose (Writes).
type createOnly struct {
	rules *immutability.Rules
	root  string // the filesystem storage's root directory, "" otherwise
	log   *slog.Logger
	// writes names how immutable tag links are created ("link(2)",
	// "S3 If-None-Match"), or is "" when the storage has no create-only
	// write and the coordination locks alone hold.
	writes string
}

// linkCreator creates a file with content unless it exists; if it
// exists, it returns what it holds.
type linkCreator interface {
	create(ctx context.Context, path string, content []byte) (existing []byte, created bool, err error)
}

// createOnlyDriver is the wrapped driver.
type createOnlyDriver struct {
	storagedriver.StorageDriver
	c     *createOnly
	links linkCreator
}

// newCreateOnlyDriver is the storage middleware's InitFunc. It must be the
// first storage middleware, so that it sees the driver itself.
func newCreateOnlyDriver(ctx context.Context, d storagedriver.StorageDriver, options map[string]any) (storagedriver.StorageDriver, error) {
	c, ok := options[OptionCreateOnly].(*createOnly)
	if !ok {
		return nil, fmt.Errorf("storage middleware %s needs its state: run it through ociwf registry serve", MiddlewareName)
	}
	var links linkCreator
	switch drv := d.(type) {
	case *filesystem.Driver:
		if c.root == "" {
			return nil, fmt.Errorf("storage middleware %s: filesystem storage without its root directory", MiddlewareName)
		}
		links, c.writes = fsLinks{root: c.root}, "link(2)"
	case *s3driver.Driver:
		l, err := newS3Links(drv)
		if err != nil {
			return nil, fmt.Errorf("storage middleware %s: %w", MiddlewareName, err)
		}
		switch err := l.probe(ctx); {
		case errors.Is(err, errNoConditionalWrites):
			c.log.Warn("storage: S3 answered a second create-only PUT of one key with success, so it does not honour If-None-Match; immutable tags are held by the coordination locks alone", "bucket", l.bucket)
			return d, nil
		case err != nil:
			return nil, fmt.Errorf("storage middleware %s: %w", MiddlewareName, err)
		}
		links, c.writes = l, "S3 If-None-Match"
	default:
		c.log.Info("storage: no create-only writes for this storage driver; immutable tags are held by the coordination locks alone", "driver", d.Name())
		return d, nil
	}
	return &createOnlyDriver{StorageDriver: d, c: c, links: links}, nil
}

// tagLink splits the path of a tag's current link into the repository
// and the tag.
func tagLink(path string) (repo, tag string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/docker/registry/v2/repositories/")
	if !ok {
		return "", "", false
	}
	// No repository path component begins with '_' (reference.NameRegexp).
	repo, rest, ok = strings.Cut(rest, "/_manifests/tags/")
	if !ok {
		return "", "", false
	}
	tag, ok = strings.CutSuffix(rest, "/current/link")
	if !ok || tag == "" || strings.Contains(tag, "/") {
		return "", "", false
	}
	return repo, tag, true
}

// PutContent creates the link of an immutable tag, and writes everything
// else as the driver does.
func (d *createOnlyDriver) PutContent(ctx context.Context, path string, content []byte) error {
	repo, tag, ok := tagLink(path)
	if !ok {
		return d.StorageDriver.PutContent(ctx, path, content)
	}
	if mode, _ := d.c.rules.Match(repo, tag); mode != immutability.Immutable {
		return d.StorageDriver.PutContent(ctx, path, content)
	}
	existing, created, err := d.links.create(ctx, path, content)
	if err != nil {
		return fmt.Errorf("create the link of tag %s of %s: %w", tag, repo, err)
	}
	if created || bytes.Equal(bytes.TrimSpace(existing), bytes.TrimSpace(content)) {
		return nil
	}
	taken := &TagTakenError{Repository: repo, Tag: tag, Digest: digest.Digest(bytes.TrimSpace(existing)), Want: digest.Digest(bytes.TrimSpace(content))}
	// Distribution linked this write's digest into the tag's index before
	// the current link; the index entry of a digest the tag never named
	// goes again.
	if taken.Want.Validate() == nil {
		idx := strings.TrimSuffix(path, "/current/link") + "/index/" + taken.Want.Algorithm().String() + "/" + taken.Want.Encoded()
		if err := d.StorageDriver.Delete(ctx, idx); err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
			d.c.log.Warn("storage: remove a refused tag write's index entry", "path", idx, "err", err)
		}
	}
	return taken
}

// fsLinks creates links on a filesystem: a complete temporary file beside
// the link, then link(2), which fails if the link exists. Readers never
// see a partial link, and a writer killed midway leaves a temporary file
// at most.
type fsLinks struct{ root string }

func (f fsLinks) create(_ context.Context, path string, content []byte) ([]byte, bool, error) {
	full := filepath.Join(f.root, filepath.FromSlash(path))
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o777); err != nil { // as Distribution's filesystem driver
		return nil, false, err
	}
	tmp := fmt.Sprintf("%s.%s.tmp", full, randomToken())
	err := writeFile(tmp, content)
	if err == nil {
		err = os.Link(tmp, full)
	}
	_ = os.Remove(tmp)
	switch {
	case err == nil:
		return nil, true, nil
	case !errors.Is(err, fs.ErrExist):
		return nil, false, err
	}
	existing, err := os.ReadFile(full)
	return existing, false, err
}

// writeFile writes content to a new file path and syncs it.
func writeFile(path string, content []byte) error {
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = fd.Write(content)
	if err == nil {
		err = fd.Sync()
	}
	return errors.Join(err, fd.Close())
}

// s3Links creates links on S3 with PUT If-None-Match: *, through the S3
// client Distribution's S3 driver built from the configuration (so the
// credentials, endpoint and TLS settings are the operator's), with the
// driver's encryption, ACL and storage class.
type s3Links struct {
	client       *s3.S3
	bucket       string
	key          func(path string) string
	encrypt      bool
	keyID        string
	storageClass string
	acl          string
}

// errNoConditionalWrites: the S3 endpoint ignores If-None-Match on PUT.
var errNoConditionalWrites = errors.New("S3 endpoint does not honour If-None-Match on PUT")

// newS3Links reads the S3 driver's client and settings. Distribution
// keeps them as exported fields of its unexported driver type; a
// Distribution whose S3 driver no longer has them is refused here, not
// served without create-only links.
func newS3Links(d *s3driver.Driver) (*s3Links, error) {
	v := reflect.ValueOf(d.StorageDriver)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("the S3 driver is a %T, not the struct this version of ociwf reads its S3 client from", d.StorageDriver)
	}
	v = v.Elem()
	field := func(name string) (any, error) {
		f := v.FieldByName(name)
		if !f.IsValid() || !f.CanInterface() {
			return nil, fmt.Errorf("the S3 driver (%s) has no field %s, which this version of ociwf reads", v.Type(), name)
		}
		return f.Interface(), nil
	}
	var errs []error
	get := func(name string) any {
		x, err := field(name)
		errs = append(errs, err)
		return x
	}
	client, _ := get("S3").(*s3.S3)
	bucket, _ := get("Bucket").(string)
	encrypt, _ := get("Encrypt").(bool)
	keyID, _ := get("KeyID").(string)
	storageClass, _ := get("StorageClass").(string)
	acl, _ := get("ObjectACL").(string)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if client == nil || bucket == "" {
		return nil, fmt.Errorf("the S3 driver has no client or bucket")
	}
	return &s3Links{client: client, bucket: bucket, key: d.S3BucketKey, encrypt: encrypt, keyID: keyID, storageClass: storageClass, acl: acl}, nil
}

// conflictRetries bounds the retries of a create-only PUT that S3 answers
// 409 ConditionalRequestConflict (another conditional write of the key
// in flight).
const conflictRetries = 5

func (l *s3Links) create(ctx context.Context, path string, content []byte) ([]byte, bool, error) {
	key := l.key(path)
	wait := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := l.put(ctx, key, content)
		var rf awserr.RequestFailure
		switch {
		case err == nil:
			return nil, true, nil
		case errors.As(err, &rf) && rf.StatusCode() == http.StatusPreconditionFailed:
			existing, err := l.get(ctx, key)
			return existing, false, err
		case errors.As(err, &rf) && rf.StatusCode() == http.StatusConflict && attempt < conflictRetries:
			select {
			case <-ctx.Done():
				return nil, false, ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		default:
			return nil, false, err
		}
	}
}

// put is a PUT of key with If-None-Match: *.
func (l *s3Links) put(ctx context.Context, key string, content []byte) error {
	in := &s3.PutObjectInput{
		Bucket:      aws.String(l.bucket),
		Key:         aws.String(key),
		ContentType: aws.String("application/octet-stream"),
		ACL:         aws.String(l.acl),
		Body:        bytes.NewReader(content),
	}
	if l.encrypt {
		in.ServerSideEncryption = aws.String("AES256")
		if l.keyID != "" {
			in.ServerSideEncryption, in.SSEKMSKeyId = aws.String("aws:kms"), aws.String(l.keyID)
		}
	}
	if l.storageClass != "" && l.storageClass != "NONE" {
		in.StorageClass = aws.String(l.storageClass)
	}
	req, _ := l.client.PutObjectRequest(in)
	req.SetContext(ctx)
	req.HTTPRequest.Header.Set("If-None-Match", "*")
	return req.Send()
}

// get reads key, at most a link's worth.
func (l *s3Links) get(ctx context.Context, key string) ([]byte, error) {
	out, err := l.client.GetObjectWithContext(ctx, &s3.GetObjectInput{Bucket: aws.String(l.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, 1<<10))
}

// probe checks, once at start, that the endpoint refuses a second
// create-only PUT of one key (<rootdirectory>/ociwf/create-only-probe).
func (l *s3Links) probe(ctx context.Context) error {
	key := l.key("/ociwf/create-only-probe")
	var rf awserr.RequestFailure
	for range 2 {
		err := l.put(ctx, key, []byte("ociwf checks that this storage refuses to overwrite this object\n"))
		switch {
		case errors.As(err, &rf) && rf.StatusCode() == http.StatusPreconditionFailed:
			return nil
		case err != nil:
			return fmt.Errorf("check that S3 (bucket %s) refuses overwrites with If-None-Match: %w", l.bucket, err)
		}
	}
	return errNoConditionalWrites
}
