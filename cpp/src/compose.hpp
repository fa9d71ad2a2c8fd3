// Mask to alpha, backgrounds and compositing: the Python compositor's basic path without the guided filter.
#pragma once

#include <memory>
#include <string>

#include <opencv2/core.hpp>

namespace bgswap {

constexpr float DEFAULT_THRESHOLD = 0.5f;   // RefineSettings.threshold
constexpr float DEFAULT_FEATHER = 0.15f;    // RefineSettings.feather
constexpr float DEFAULT_TEMPORAL = 0.6f;    // RefineSettings.temporal
constexpr int DEFAULT_BLUR = 15;            // background_spec.DEFAULT_BLUR

// refine.soft_threshold: a linear ramp of half-width feather around threshold (float32 in [0, 1]).
cv::Mat soft_threshold(const cv::Mat& prob, float threshold = DEFAULT_THRESHOLD, float feather = DEFAULT_FEATHER);

// refine.TemporalFilter: exponential smoothing of the low-resolution probability whose weight falls to 0
// where it changes a lot (motion).
class TemporalFilter {
public:
    cv::Mat operator()(const cv::Mat& prob, float strength);

private:
    cv::Mat state_;
};

class Background {
public:
    virtual ~Background() = default;
    // A BGR uint8 image the size of frame; alpha is the person's matte (float32, frame's size).
    virtual const cv::Mat& render(const cv::Mat& frame, const cv::Mat& alpha) = 0;
};

// "FILE" (an image), "blur" / "blur:1-100" or "color:#RRGGBB" (background_spec). UserError when it cannot.
std::unique_ptr<Background> parse_background(const std::string& spec);

// compose.cover_fit: scale to cover width x height keeping the aspect ratio, centre-crop the rest.
cv::Mat cover_fit(const cv::Mat& img, int width, int height);

// out = alpha * frame + (1 - alpha) * background.
cv::Mat composite(const cv::Mat& frame, const cv::Mat& alpha, const cv::Mat& background);

// An input photo as BGR uint8, as the Python app's image source reads it (cv2.IMREAD_COLOR: EXIF
// orientation applied, alpha dropped). UserError when missing or unreadable.
cv::Mat read_image(const std::string& path, const char* what);
// A background picture as compose.read_image reads it (IMREAD_UNCHANGED: alpha flattened onto white).
cv::Mat read_background_image(const std::string& path);

}  // namespace bgswap
