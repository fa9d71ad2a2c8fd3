// The exported model: meta.json (how to feed it) and model.onnx run through OpenCV's DNN module.
// Mirrors bgswap.inference.model_meta and bgswap.inference.segmenter (Python), step by step.
#pragma once

#include <array>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

namespace bgswap {

// Exit codes (the Python app's headless ones where they mean the same).
constexpr int EXIT_BAD_INPUT = 2;   // an option, the model, an input image or video
constexpr int EXIT_NO_OUTPUT = 3;   // the output could not be written
constexpr int EXIT_INTERNAL = 1;    // anything else (an OpenCV error while running)

// An error the user can fix, with the exit code it ends the program with.
struct UserError : std::runtime_error {
    int code;
    UserError(const std::string& what, int exit_code = EXIT_BAD_INPUT) : std::runtime_error(what), code(exit_code) {}
};

constexpr double DEFAULT_SHORT_SIDE_FLOOR = 0.75;   // model_meta.DEFAULT_SHORT_SIDE_FLOOR
constexpr int INPUT_SIZE_STEP = 32;                 // model_meta.INPUT_SIZE_STEP

// meta.json's fields that say how to feed the network (model_meta.ModelMeta).
struct ModelMeta {
    std::string name = "portrait_bisenetv2";
    std::string version = "0";
    int input_h = 256, input_w = 256;               // input_size: (height, width)
    std::array<double, 3> mean{0.5, 0.5, 0.5};
    std::array<double, 3> std{0.5, 0.5, 0.5};
    std::string color_order = "RGB";
    std::string layout = "NCHW";
    std::string output = "person_probability";
    std::string input_name = "x";
    bool mirror_averaged = false;                   // the graph already averages the mirror image: nothing to do here
    bool frame_aspect = false;
    double short_side_floor = DEFAULT_SHORT_SIDE_FLOOR;
    int short_side_step = INPUT_SIZE_STEP;

    static ModelMeta load(const std::filesystem::path& model_dir);   // UserError when missing, corrupt or unsupported
    // (height, width) of the network input for a frame of frame_h x frame_w (ModelMeta.input_shape).
    cv::Size input_shape(int frame_h, int frame_w) const;
};

// model_meta.input_shape_for: the frame's shape with its long side long_side, as a cv::Size (width, height).
cv::Size input_shape_for(int frame_h, int frame_w, int long_side, double short_floor = DEFAULT_SHORT_SIDE_FLOOR,
                         int step = INPUT_SIZE_STEP);

// segmenter.shrink_to: INTER_AREA, first by the largest whole factor dividing both sides when over twice the size.
cv::Mat shrink_to(const cv::Mat& frame, int width, int height);

class Segmenter {
public:
    explicit Segmenter(const std::filesystem::path& model_dir);
    const ModelMeta& meta() const { return meta_; }
    int folded_convs() const { return folded_; }   // repeated depthwise convs folded back on loading
    // BGR uint8 -> the network input (1x3xHxW float32) at the frame's input shape (Segmenter.preprocess).
    cv::Mat preprocess(const cv::Mat& frame_bgr) const;
    // The network on a preprocessed input: the person probability (float32 HxW in [0, 1]) at its shape.
    cv::Mat run(const cv::Mat& blob);
    // Both: Segmenter.predict_lowres.
    cv::Mat predict_lowres(const cv::Mat& frame_bgr) { return run(preprocess(frame_bgr)); }
    // The probability scaled bilinearly to the frame's size: Segmenter.__call__.
    cv::Mat predict(const cv::Mat& frame_bgr);

private:
    std::filesystem::path onnx_;
    ModelMeta meta_;
    cv::dnn::Net net_;
    int folded_ = 0;
    cv::Size net_shape_;                            // the input shape net_ last ran at
    cv::Scalar mean255_;
    cv::Scalar inv_std_;
};

// The folder a model is read from when --model-dir is not given (see README: C++ client), or "" when none.
std::filesystem::path default_model_dir(const char* argv0, std::string* tried);

}  // namespace bgswap
