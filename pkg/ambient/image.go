package ambient

import "strings"

// ImageTag returns the tag of an image reference ("" when there is none or
// it is pinned only by digest): "gcr.io/istio-release/pilot:1.27.1@sha256:ab"
// gives "1.27.1", "localhost:5000/istio/pilot" gives "".
func ImageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return ""
	}
	return image[colon+1:]
}

// imageVariants are the suffixes Istio publishes variants of one version under.
var imageVariants = []string{"-distroless", "-debug"}

// ImageVersion is ImageTag without Istio's variant suffix
// ("ztunnel:1.28.0-distroless" gives "1.28.0").
func ImageVersion(image string) string {
	tag := ImageTag(image)
	for _, v := range imageVariants {
		tag = strings.TrimSuffix(tag, v)
	}
	return tag
}
