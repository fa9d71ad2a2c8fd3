#include "model.hpp"

#include "onnx_rewrite.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bgswap {

namespace {

double py_round(double x) { return std::nearbyint(x); }   // Python's round(): halves to even (default FE_TONEAREST)

template <typename T>
void read_field(const json& d, const char* key, T& into) {
    if (d.contains(key) && !d.at(key).is_null()) into = d.at(key).get<T>();
}

// model.onnx read with the export's repeated depthwise convs folded back (onnx_rewrite.hpp).
cv::dnn::Net read_net(const fs::path& onnx, int* folded_convs) {
    std::ifstream in(onnx, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw UserError("model file " + onnx.string() + " could not be read");
    std::string folded;
    try {
        folded = fold_repeated_depthwise(bytes, folded_convs);
    } catch (const std::runtime_error& e) {
        throw UserError("model file " + onnx.string() + " is not an ONNX file (" + e.what() + ")");
    }
    cv::dnn::Net net;
    try {
        net = cv::dnn::readNetFromONNX(folded.data(), folded.size());
    } catch (const cv::Exception& e) {
        throw UserError("model file " + onnx.string() + " could not be read by OpenCV's DNN module: " + e.msg);
    }
    if (net.empty()) throw UserError("model file " + onnx.string() + " could not be read by OpenCV's DNN module");
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    return net;
}

}  // namespace

cv::Size input_shape_for(int frame_h, int frame_w, int long_side, double short_floor, int step) {
    // floor = -(-round(long_side * short_floor) // step) * step
    const long rounded = static_cast<long>(py_round(long_side * short_floor));
    const long floor_ = (rounded + step - 1) / step * step;
    // short = min(long_side, max(floor, int(long_side * min(h, w) / max(h, w) / step + 0.5) * step))
    const double ratio = static_cast<double>(long_side) * std::min(frame_h, frame_w) / std::max(frame_h, frame_w) / step;
    const long near = static_cast<long>(ratio + 0.5) * step;
    const int short_side = static_cast<int>(std::min<long>(long_side, std::max(floor_, near)));
    return frame_h > frame_w ? cv::Size(short_side, long_side) : cv::Size(long_side, short_side);
}

cv::Size ModelMeta::input_shape(int frame_h, int frame_w) const {
    if (!frame_aspect) return {input_w, input_h};
    return input_shape_for(frame_h, frame_w, std::max(input_h, input_w), short_side_floor, short_side_step);
}

ModelMeta ModelMeta::load(const fs::path& model_dir) {
    const fs::path path = model_dir / "meta.json";
    if (!fs::is_directory(model_dir))
        throw UserError("model folder " + model_dir.string() + " does not exist: point --model-dir at a folder made "
                        "by 'python -m training.export' (model.onnx + meta.json)");
    if (!fs::is_regular_file(path))
        throw UserError("model metadata " + path.string() + " not found: point --model-dir at a folder made by "
                        "'python -m training.export'");
    ModelMeta m;
    try {
        std::ifstream in(path);
        const json d = json::parse(in);
        if (!d.is_object()) throw std::runtime_error("not a JSON object");
        read_field(d, "name", m.name);
        read_field(d, "version", m.version);
        if (d.contains("input_size")) {
            const auto size = d.at("input_size").get<std::vector<int>>();
            if (size.size() != 2) throw std::runtime_error("input_size must be [height, width]");
            m.input_h = size[0];
            m.input_w = size[1];
        }
        if (d.contains("mean")) {
            const auto v = d.at("mean").get<std::vector<double>>();
            if (v.size() != 3) throw std::runtime_error("mean must have 3 values");
            std::copy(v.begin(), v.end(), m.mean.begin());
        }
        if (d.contains("std")) {
            const auto v = d.at("std").get<std::vector<double>>();
            if (v.size() != 3) throw std::runtime_error("std must have 3 values");
            std::copy(v.begin(), v.end(), m.std.begin());
        }
        read_field(d, "color_order", m.color_order);
        read_field(d, "layout", m.layout);
        read_field(d, "output", m.output);
        read_field(d, "input_name", m.input_name);
        read_field(d, "mirror_averaged", m.mirror_averaged);
        read_field(d, "frame_aspect", m.frame_aspect);
        read_field(d, "short_side_floor", m.short_side_floor);
        read_field(d, "short_side_step", m.short_side_step);
    } catch (const std::exception& e) {   // json::exception (parse, type) or ours
        throw UserError("model metadata " + path.string() + " is corrupt (" + e.what() + "); re-export the model");
    }
    if ((m.color_order != "RGB" && m.color_order != "BGR") || m.layout != "NCHW")
        throw UserError("model metadata " + path.string() + ": unsupported color_order/layout/input_size");
    if (m.output != "person_probability")
        throw UserError("model metadata " + path.string() + ": unsupported output '" + m.output + "'");
    if (m.input_h <= 0 || m.input_w <= 0 || m.short_side_step <= 0 || !(m.short_side_floor > 0.0) ||
        m.short_side_floor > 1.0 || m.std[0] == 0.0 || m.std[1] == 0.0 || m.std[2] == 0.0)
        throw UserError("model metadata " + path.string() + ": input_size, std, short_side_floor or short_side_step "
                        "out of range");
    return m;
}

cv::Mat shrink_to(const cv::Mat& frame, int width, int height) {
    const int fh = frame.rows, fw = frame.cols;
    if (fh == height && fw == width) return frame;
    int k = 1;
    if (fh >= height && fw >= width) {
        for (k = std::min(fh / height, fw / width); k > 1; --k)
            if (fh % k == 0 && fw % k == 0) break;
        k = std::max(k, 1);
    }
    cv::Mat src = frame, out;
    if (k >= 2) {
        cv::resize(frame, src, cv::Size(fw / k, fh / k), 0, 0, cv::INTER_AREA);
    }
    cv::resize(src, out, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    return out;
}

Segmenter::Segmenter(const fs::path& model_dir) : onnx_(model_dir / "model.onnx"), meta_(ModelMeta::load(model_dir)) {
    if (!fs::is_regular_file(onnx_))
        throw UserError("model file " + onnx_.string() + " not found (the fp32 ONNX export; meta.json is there)");
    net_ = read_net(onnx_, &folded_);
    // As Segmenter.__init__: blobFromImage subtracts mean * 255 (in the model's channel order), then each
    // channel is multiplied by 1 / (255 * std) (float32, as numpy computes it there).
    mean255_ = cv::Scalar(meta_.mean[0] * 255.0, meta_.mean[1] * 255.0, meta_.mean[2] * 255.0);
    for (int c = 0; c < 3; ++c) inv_std_[c] = static_cast<double>(1.0f / (255.0f * static_cast<float>(meta_.std[c])));
}

cv::Mat Segmenter::preprocess(const cv::Mat& frame_bgr) const {
    CV_Assert(frame_bgr.type() == CV_8UC3 && !frame_bgr.empty());
    const cv::Size shape = meta_.input_shape(frame_bgr.rows, frame_bgr.cols);
    const cv::Mat small = shrink_to(frame_bgr, shape.width, shape.height);
    cv::Mat blob = cv::dnn::blobFromImage(small, 1.0, cv::Size(), mean255_, meta_.color_order == "RGB", false, CV_32F);
    const size_t plane = static_cast<size_t>(shape.width) * static_cast<size_t>(shape.height);
    for (int c = 0; c < 3; ++c) {
        cv::Mat ch(1, static_cast<int>(plane), CV_32F, blob.ptr<float>(0, c));
        ch *= inv_std_[c];
    }
    return blob;
}

cv::Mat Segmenter::run(const cv::Mat& blob) {
    const cv::Size shape(blob.size[3], blob.size[2]);
    if (net_shape_ != cv::Size() && shape != net_shape_) {
        // A new input shape: a fresh network, so no layer keeps shapes worked out for the old one.
        net_ = read_net(onnx_, &folded_);
    }
    net_shape_ = shape;
    net_.setInput(blob, meta_.input_name);
    cv::Mat out = net_.forward();
    // N x 1 x H x W (or N x H x W): the first image's single channel.
    if (out.dims < 3 || (out.dims == 4 && out.size[1] != 1))
        throw std::runtime_error("the model's output is not N x 1 x H x W (meta.json says person_probability)");
    const int h = out.size[out.dims - 2], w = out.size[out.dims - 1];
    cv::Mat prob(h, w, CV_32F, out.ptr<float>());
    cv::Mat clipped;
    cv::min(cv::max(prob, 0.0), 1.0, clipped);
    return clipped;
}

cv::Mat Segmenter::predict(const cv::Mat& frame_bgr) {
    cv::Mat prob = predict_lowres(frame_bgr), up;
    cv::resize(prob, up, frame_bgr.size(), 0, 0, cv::INTER_LINEAR);
    return up;
}

fs::path default_model_dir(const char* argv0, std::string* tried) {
    std::vector<fs::path> places;
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec && argv0) exe = fs::absolute(argv0, ec);
    const fs::path rel = fs::path("models") / "portrait_bisenetv2";
    if (!exe.empty()) {
        places.push_back(exe.parent_path().parent_path() / rel);   // build/bgswap-cpp in a checkout
        places.push_back(exe.parent_path() / rel);                 // a folder shipped beside the program
    }
    places.push_back(fs::current_path(ec) / rel);
#ifdef BGSWAP_REPO_MODEL_DIR
    places.push_back(fs::path(BGSWAP_REPO_MODEL_DIR));            // the checkout it was built from
#endif
    for (const auto& p : places) {
        if (fs::is_regular_file(p / "meta.json", ec)) return p.lexically_normal();
        if (tried) *tried += (tried->empty() ? "" : ", ") + p.lexically_normal().string();
    }
    return {};
}

}  // namespace bgswap
