package docker

import (
	"context"

	"github.com/moby/moby/client"
)

// imageEngine is the part of the Docker SDK that lists, pulls and removes images. The
// Service's engine is asked for it when images are first used.
type imageEngine interface {
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImagePull(ctx context.Context, ref string, options client.ImagePullOptions) (client.ImagePullResponse, error)
	ImageRemove(ctx context.Context, image string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ImageInspect(ctx context.Context, ref string, options ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
}

var _ imageEngine = (*client.Client)(nil)

// imageAPI returns the engine's image methods, or ErrUnsupported when it has none.
func (s *Service) imageAPI() (imageEngine, error) {
	ie, ok := s.api.(imageEngine)
	if !ok || ie == nil {
		return nil, errorf(ErrUnsupported, "images are not supported by this Docker connection")
	}
	return ie, nil
}
