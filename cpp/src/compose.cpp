#include "compose.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "model.hpp"

namespace bgswap {

cv::Mat soft_threshold(const cv::Mat& prob, float threshold, float feather) {
    cv::Mat out;
    if (feather <= 1e-6f) {
        cv::compare(prob, threshold, out, cv::CMP_GE);
        out.convertTo(out, CV_32F, 1.0 / 255.0);
        return out;
    }
    prob.convertTo(out, CV_32F, 1.0 / (2.0 * feather), -(threshold - feather) / (2.0 * feather));
    cv::min(cv::max(out, 0.0), 1.0, out);
    return out;
}

cv::Mat TemporalFilter::operator()(const cv::Mat& prob, float strength) {
    if (strength <= 0.0f || state_.empty() || state_.size() != prob.size()) {
        state_ = prob.clone();
        return state_;
    }
    // keep = strength for small changes (flicker), falling to 0 at a change of 0.5 (real motion)
    cv::Mat diff, keep;
    cv::absdiff(prob, state_, diff);
    diff.convertTo(keep, CV_32F, -strength / 0.35, strength * 0.5 / 0.35);
    cv::min(cv::max(keep, 0.0), static_cast<double>(strength), keep);
    state_ = prob + keep.mul(state_ - prob);
    return state_;
}

namespace {

cv::Mat decode(const std::string& path, const char* what, int flags) {
    if (!std::filesystem::is_regular_file(path)) throw UserError(std::string(what) + " " + path + " does not exist");
    cv::Mat img;
    try {
        img = cv::imread(path, flags);
    } catch (const cv::Exception&) {
        img.release();
    }
    if (img.empty()) throw UserError(std::string(what) + " " + path + " is not a readable image");
    return img;
}

}  // namespace

cv::Mat read_image(const std::string& path, const char* what) { return decode(path, what, cv::IMREAD_COLOR); }

cv::Mat read_background_image(const std::string& path) {
    cv::Mat img = decode(path, "background", cv::IMREAD_UNCHANGED);
    if (img.depth() != CV_8U) {
        double hi = 0;
        cv::minMaxLoc(img.reshape(1), nullptr, &hi);
        img.convertTo(img, CV_8U, 255.0 / std::max(1.0, hi));
    }
    if (img.channels() == 1) {
        cv::cvtColor(img, img, cv::COLOR_GRAY2BGR);
    } else if (img.channels() == 4) {   // flattened onto white, as the Python read_image does
        cv::Mat bgr, a, a3;
        cv::cvtColor(img, bgr, cv::COLOR_BGRA2BGR);
        cv::extractChannel(img, a, 3);
        a.convertTo(a, CV_32F, 1.0 / 255.0);
        cv::merge(std::vector<cv::Mat>{a, a, a}, a3);
        cv::Mat f;
        bgr.convertTo(f, CV_32F);
        f = f.mul(a3) + (cv::Scalar::all(1.0) - a3) * 255.0;
        f.convertTo(img, CV_8U);
    }
    return img;
}

cv::Mat cover_fit(const cv::Mat& img, int width, int height) {
    const double s = std::max(static_cast<double>(width) / img.cols, static_cast<double>(height) / img.rows);
    const int nw = std::max(width, static_cast<int>(std::nearbyint(img.cols * s)));
    const int nh = std::max(height, static_cast<int>(std::nearbyint(img.rows * s)));
    cv::Mat resized;
    cv::resize(img, resized, cv::Size(nw, nh), 0, 0, s < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    return resized(cv::Rect((nw - width) / 2, (nh - height) / 2, width, height)).clone();
}

cv::Mat composite(const cv::Mat& frame, const cv::Mat& alpha, const cv::Mat& background) {
    cv::Mat inv, out;
    cv::subtract(cv::Scalar::all(1.0), alpha, inv);
    cv::blendLinear(frame, background, alpha, inv, out);
    return out;
}

namespace {

class ImageBackground : public Background {
public:
    explicit ImageBackground(cv::Mat image) : image_(std::move(image)) {}
    const cv::Mat& render(const cv::Mat& frame, const cv::Mat&) override {
        if (fitted_.size() != frame.size()) fitted_ = cover_fit(image_, frame.cols, frame.rows);
        return fitted_;
    }

private:
    cv::Mat image_, fitted_;
};

class ColorBackground : public Background {
public:
    explicit ColorBackground(cv::Scalar bgr) : bgr_(bgr) {}
    const cv::Mat& render(const cv::Mat& frame, const cv::Mat&) override {
        if (img_.size() != frame.size()) img_ = cv::Mat(frame.size(), CV_8UC3, bgr_);
        return img_;
    }

private:
    cv::Scalar bgr_;
    cv::Mat img_;
};

// compose.BlurBackground: the room blurred at 1/f of the size (f = 4 up to strength 11, else 8), with the
// person left out of the average (normalised convolution) so no halo bleeds round them.
class BlurBackground : public Background {
public:
    explicit BlurBackground(int strength) : strength_(strength) {}
    const cv::Mat& render(const cv::Mat& frame, const cv::Mat& alpha) override {
        const int f = strength_ < 12 ? 4 : 8;
        const cv::Size small_size(std::max(1, frame.cols / f), std::max(1, frame.rows / f));
        cv::Mat small, a_small, bgw, num, den, plain, out;
        cv::resize(frame, small, small_size, 0, 0, cv::INTER_AREA);
        small.convertTo(small, CV_32F);
        cv::resize(alpha, a_small, small_size, 0, 0, cv::INTER_AREA);
        cv::subtract(cv::Scalar::all(1.0), a_small, bgw);
        const double sigma = strength_ * 2.0 / f;
        cv::Mat bgw3;
        cv::merge(std::vector<cv::Mat>{bgw, bgw, bgw}, bgw3);
        cv::GaussianBlur(small.mul(bgw3), num, cv::Size(), sigma);
        cv::GaussianBlur(bgw, den, cv::Size(), sigma);
        cv::GaussianBlur(small, plain, cv::Size(), sigma);
        cv::Mat den3, use;
        cv::merge(std::vector<cv::Mat>{den, den, den}, den3);
        cv::divide(num, cv::max(den3, 1e-6), out);
        cv::compare(den, 0.02, use, cv::CMP_LE);   // no background nearby: the plain blur
        plain.copyTo(out, use);
        out.convertTo(small8_, CV_8U);
        cv::resize(small8_, result_, frame.size(), 0, 0, cv::INTER_LINEAR);
        return result_;
    }

private:
    int strength_;
    cv::Mat small8_, result_;
};

}  // namespace

std::unique_ptr<Background> parse_background(const std::string& spec) {
    std::string low = spec;
    std::transform(low.begin(), low.end(), low.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (low == "blur" || low.rfind("blur:", 0) == 0) {
        int strength = DEFAULT_BLUR;
        if (low.size() > 5) {
            const std::string arg = low.substr(5);
            if (!std::regex_match(arg, std::regex("[0-9]{1,3}")) || std::stoi(arg) < 1 || std::stoi(arg) > 100)
                throw UserError("bad blur strength in '" + spec + "': use blur:1 to blur:100");
            strength = std::stoi(arg);
        }
        return std::make_unique<BlurBackground>(strength);
    }
    if (low.rfind("color:", 0) == 0 || low.rfind("colour:", 0) == 0) {
        std::smatch m;
        const std::string arg = spec.substr(spec.find(':') + 1);
        if (!std::regex_match(arg, m, std::regex("#?([0-9a-fA-F]{6})")))
            throw UserError("bad colour in '" + spec + "': use color:#RRGGBB");
        const unsigned long rgb = std::stoul(m[1].str(), nullptr, 16);
        return std::make_unique<ColorBackground>(
            cv::Scalar(static_cast<double>(rgb & 0xFF), static_cast<double>((rgb >> 8) & 0xFF),
                       static_cast<double>((rgb >> 16) & 0xFF)));
    }
    return std::make_unique<ImageBackground>(read_background_image(spec));
}

}  // namespace bgswap
