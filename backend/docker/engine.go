package docker

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"
)

// watchEngine is the part of the Docker SDK the live snapshot needs.
type watchEngine interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerStats(ctx context.Context, id string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}

// engine is the whole of the Docker SDK this package uses: the seam where tests put a fake.
type engine interface {
	watchEngine
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRestart(ctx context.Context, id string, options client.ContainerRestartOptions) (client.ContainerRestartResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerLogs(ctx context.Context, id string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ImageInspect(ctx context.Context, ref string, options ...client.ImageInspectOption) (client.ImageInspectResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkCreate(ctx context.Context, name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	VolumeCreate(ctx context.Context, options client.VolumeCreateOptions) (client.VolumeCreateResult, error)
	execEngine
	archiveEngine
	Close() error
}

// archiveEngine is the part of the Docker SDK that reads and writes files in containers
// through tar streams (files.go); ContainerStatPath is in execEngine.
type archiveEngine interface {
	CopyFromContainer(ctx context.Context, id string, options client.CopyFromContainerOptions) (client.CopyFromContainerResult, error)
	CopyToContainer(ctx context.Context, id string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error)
}

// execEngine is the part of the Docker SDK that runs processes in containers and attaches
// to them (exec.go).
type execEngine interface {
	ExecCreate(ctx context.Context, containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
	ExecResize(ctx context.Context, execID string, options client.ExecResizeOptions) (client.ExecResizeResult, error)
	ContainerAttach(ctx context.Context, id string, options client.ContainerAttachOptions) (client.ContainerAttachResult, error)
	ContainerResize(ctx context.Context, id string, options client.ContainerResizeOptions) (client.ContainerResizeResult, error)
	ContainerWait(ctx context.Context, id string, options client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerStatPath(ctx context.Context, id string, options client.ContainerStatPathOptions) (client.ContainerStatPathResult, error)
}

var _ engine = (*client.Client)(nil)

// answerWait is how long a call waits for the engine's answer to begin, beyond the stop
// timeout (a stop answers once the container has stopped): past it the call fails with
// "Docker unreachable" instead of hanging on an engine that hangs. Streams (events, logs,
// attach, pulls) answer at once and then run as long as they need.
const answerWait = time.Minute

// newClient builds the SDK client: host from cfg, else DOCKER_HOST, else the default socket;
// TLS from DOCKER_CERT_PATH when set; the API version always negotiated (DOCKER_API_VERSION
// is deliberately not read); an answer that has not begun within wait abandoned. Every HTTP
// request to the engine adds one to calls.
func newClient(host string, calls *atomic.Int64, wait time.Duration) (*client.Client, error) {
	opts := []client.Opt{
		client.WithHTTPClient(&http.Client{Transport: &http.Transport{
			// As the SDK's own transport, which this replaces to bound the wait. A dialer
			// from the start (WithHost replaces it) keeps the copy WithHTTPClient makes
			// from setting up TLS, which would make the SDK speak https to a plain socket.
			DialContext:           (&net.Dialer{}).DialContext,
			MaxIdleConns:          6,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: wait,
		}, CheckRedirect: client.CheckRedirect}),
		client.WithTLSClientConfigFromEnv(),
		client.WithHTTPRequestHook(func(*http.Request) error {
			calls.Add(1)
			return nil
		}),
	}
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	if host == "" {
		host = client.DefaultDockerHost
	}
	opts = append(opts, client.WithHost(host))
	return client.New(opts...)
}
