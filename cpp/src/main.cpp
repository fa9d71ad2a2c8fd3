// bgswap-cpp: the exported segmentation model without Python. See the README's "C++ client" section.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/highgui.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "compose.hpp"
#include "model.hpp"

namespace fs = std::filesystem;
using namespace bgswap;

namespace {

const char* USAGE =
    "usage: bgswap-cpp matte IN OUT.png [options]\n"
    "       bgswap-cpp composite IN BACKGROUND OUT.jpg [options]\n"
    "       bgswap-cpp video IN.mp4|CAMERA_INDEX OUT.mp4 [--background FILE|blur[:1-100]|color:#RRGGBB]\n"
    "                        [--frames N] [--show] [options]\n"
    "\n"
    "  matte      the person probability (0-255) at the image's size\n"
    "  composite  the person on BACKGROUND (an image, blur[:1-100] or color:#RRGGBB)\n"
    "  video      capture, segment, composite, write (and --show); prints fps and ms per stage at the end\n"
    "\n"
    "options:\n"
    "  --model-dir DIR   folder with model.onnx and meta.json (default: models/portrait_bisenetv2 of the\n"
    "                    checkout beside the program's folder, else of the current folder, else of the\n"
    "                    checkout it was built from)\n"
    "  --threads N       OpenCV threads (default 1, as the Python app's model)\n"
    "  --background SPEC (video) what goes behind the person (default blur)\n"
    "  --frames N        (video) stop after N frames (default: the end of the file; a camera until Ctrl+C or q)\n"
    "  --show            (video) also show the result in a window (q or Esc stops)\n"
    "  -v, --verbose     say which model, where from, and the input shape it is fed (on stderr)\n"
    "  -h, --help        this help\n"
    "\n"
    "exit codes: 0 done, 1 internal error, 2 bad input (option, model, image, video), 3 output not written\n";

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

struct Args {
    std::string command;
    std::vector<std::string> positional;
    std::optional<std::string> model_dir, background;
    int threads = 1;
    long frames = -1;
    bool show = false;
    bool verbose = false;
};

long parse_count(const std::string& opt, const std::string& value, long lo, long hi) {
    if (!std::regex_match(value, std::regex("[0-9]{1,9}")) || std::stol(value) < lo || std::stol(value) > hi)
        throw UserError(opt + " takes a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                        ", not '" + value + "'");
    return std::stol(value);
}

Args parse_args(int argc, char** argv) {
    Args a;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& s = args[i];
        auto value = [&](const std::string& opt) -> std::string {
            if (i + 1 >= args.size()) throw UserError(opt + " needs a value (see bgswap-cpp --help)");
            return args[++i];
        };
        if (s == "-h" || s == "--help") {
            a.command = "help";
            return a;
        } else if (s == "--model-dir") {
            a.model_dir = value(s);
        } else if (s == "--background") {
            a.background = value(s);
        } else if (s == "--threads") {
            a.threads = static_cast<int>(parse_count(s, value(s), 1, 64));
        } else if (s == "--frames") {
            a.frames = parse_count(s, value(s), 1, 1000000000);
        } else if (s == "--show") {
            a.show = true;
        } else if (s == "-v" || s == "--verbose") {
            a.verbose = true;
        } else if (s.size() > 1 && s[0] == '-') {
            throw UserError("unknown option '" + s + "' (see bgswap-cpp --help)");
        } else if (a.command.empty()) {
            a.command = s;
        } else {
            a.positional.push_back(s);
        }
    }
    const std::map<std::string, size_t> arity{{"matte", 2}, {"composite", 3}, {"video", 2}};
    if (a.command.empty()) throw UserError(std::string("no command given\n") + USAGE);
    const auto it = arity.find(a.command);
    if (it == arity.end()) throw UserError("unknown command '" + a.command + "': use matte, composite or video");
    if (a.positional.size() != it->second)
        throw UserError("'" + a.command + "' takes " + std::to_string(it->second) + " paths, got " +
                        std::to_string(a.positional.size()) + " (see bgswap-cpp --help)");
    if (a.command != "video" && (a.background || a.frames >= 0 || a.show))
        throw UserError("--background, --frames and --show are options of 'video' only");
    return a;
}

fs::path model_dir_of(const Args& a, const char* argv0) {
    if (a.model_dir) return *a.model_dir;
    std::string tried;
    fs::path dir = default_model_dir(argv0, &tried);
    if (dir.empty()) throw UserError("no model folder found (looked in " + tried + "): give --model-dir DIR");
    return dir;
}

void describe(const Args& a, const Segmenter& seg, const fs::path& dir, const cv::Mat& frame) {
    if (!a.verbose) return;
    const ModelMeta& m = seg.meta();
    const cv::Size in = m.input_shape(frame.rows, frame.cols);
    std::fprintf(stderr, "bgswap-cpp: model %s v%s from %s (%d repeated depthwise convs folded); %dx%d frame fed at "
                 "%dx%d%s\n", m.name.c_str(), m.version.c_str(), dir.string().c_str(), seg.folded_convs(), frame.cols,
                 frame.rows, in.width, in.height, m.frame_aspect ? " (shaped like the frame)" : "");
}

void refuse_overwriting_input(const std::string& in, const std::string& out) {
    std::error_code ec;
    if (fs::exists(out, ec) && fs::equivalent(in, out, ec))
        throw UserError("the output " + out + " is the input: pick another name");
}

void write_image(const std::string& path, const cv::Mat& img) {
    bool ok = false;
    try {
        ok = cv::imwrite(path, img);
    } catch (const cv::Exception& e) {
        throw UserError("could not write " + path + ": " + e.msg, EXIT_NO_OUTPUT);
    }
    if (!ok) throw UserError("could not write " + path + " (the folder exists? a known extension?)", EXIT_NO_OUTPUT);
}

cv::Mat to_uint8(const cv::Mat& prob) {   // refine.to_uint8: 0-1 -> 0-255, rounded
    cv::Mat out;
    prob.convertTo(out, CV_8U, 255.0);
    return out;
}

int cmd_matte(const Args& a, const char* argv0) {
    const std::string &in = a.positional[0], &out = a.positional[1];
    refuse_overwriting_input(in, out);
    const cv::Mat frame = read_image(in, "image");
    const fs::path dir = model_dir_of(a, argv0);
    Segmenter seg(dir);
    describe(a, seg, dir, frame);
    write_image(out, to_uint8(seg.predict(frame)));
    return 0;
}

int cmd_composite(const Args& a, const char* argv0) {
    const std::string &in = a.positional[0], &bg_spec = a.positional[1], &out = a.positional[2];
    refuse_overwriting_input(in, out);
    const cv::Mat frame = read_image(in, "image");
    auto background = parse_background(bg_spec);
    const fs::path dir = model_dir_of(a, argv0);
    Segmenter seg(dir);
    describe(a, seg, dir, frame);
    const cv::Mat alpha = soft_threshold(seg.predict(frame));
    write_image(out, composite(frame, alpha, background->render(frame, alpha)));
    return 0;
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

int cmd_video(const Args& a, const char* argv0) {
    const std::string &in = a.positional[0], &out = a.positional[1];
    const bool camera = std::regex_match(in, std::regex("[0-9]{1,3}"));
    if (!camera) {
        if (!fs::is_regular_file(in)) throw UserError("video " + in + " does not exist");
        refuse_overwriting_input(in, out);
    }
#if defined(__linux__)
    // OpenCV's window (Qt or GTK) aborts the process when there is no display: refuse first instead.
    if (a.show && !std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY") && !std::getenv("QT_QPA_PLATFORM"))
        throw UserError("--show needs a display (DISPLAY or WAYLAND_DISPLAY is not set); leave it out to only write " +
                        out);
#endif
    auto background = parse_background(a.background.value_or("blur"));
    const fs::path dir = model_dir_of(a, argv0);
    Segmenter seg(dir);

    cv::VideoCapture cap;
    if (camera) cap.open(std::stoi(in));
    else cap.open(in);
    cv::Mat frame;
    if (!cap.isOpened() || !cap.read(frame) || frame.empty())
        throw UserError(camera ? "camera " + in + " could not be opened" : "video " + in + " is not a readable video");
    describe(a, seg, dir, frame);
    double fps = cap.get(cv::CAP_PROP_FPS);
    if (!(fps >= 1 && fps <= 240)) fps = 30.0;

    cv::VideoWriter writer;
    for (const char* fourcc : {"avc1", "mp4v"}) {   // H.264 where the FFmpeg build has an encoder, else MPEG-4
        writer.open(out, cv::VideoWriter::fourcc(fourcc[0], fourcc[1], fourcc[2], fourcc[3]), fps, frame.size());
        if (writer.isOpened()) break;
    }
    if (!writer.isOpened()) throw UserError("could not open " + out + " for writing", EXIT_NO_OUTPUT);

    const cv::Size size = frame.size(), input = seg.meta().input_shape(frame.rows, frame.cols);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    TemporalFilter temporal;
    enum { CAPTURE, PREPROCESS, MODEL, MATTE, COMPOSITE, WRITE, N_STAGES };
    const char* names[N_STAGES] = {"capture", "preprocess", "model", "matte", "composite", "write"};
    double total_ms[N_STAGES] = {};
    long n = 0;
    const std::clock_t cpu0 = std::clock();
    const auto t_start = Clock::now();
    double capture_ms = 0;   // the first frame was read before the loop
    while (!g_stop && (a.frames < 0 || n < a.frames)) {
        if (n > 0) {
            auto t = Clock::now();
            if (!cap.read(frame) || frame.empty() || frame.size() != size) break;   // the end (or a new size)
            capture_ms = ms_since(t);
        }
        total_ms[CAPTURE] += capture_ms;
        auto t = Clock::now();
        const cv::Mat blob = seg.preprocess(frame);
        total_ms[PREPROCESS] += ms_since(t);
        t = Clock::now();
        const cv::Mat prob_small = seg.run(blob);
        total_ms[MODEL] += ms_since(t);
        t = Clock::now();
        cv::Mat prob;
        cv::resize(temporal(prob_small, DEFAULT_TEMPORAL), prob, frame.size(), 0, 0, cv::INTER_LINEAR);
        const cv::Mat alpha = soft_threshold(prob);
        total_ms[MATTE] += ms_since(t);
        t = Clock::now();
        const cv::Mat result = composite(frame, alpha, background->render(frame, alpha));
        total_ms[COMPOSITE] += ms_since(t);
        t = Clock::now();
        writer.write(result);
        if (a.show) {
            cv::imshow("bgswap-cpp", result);
            const int key = cv::waitKey(1);
            if (key == 'q' || key == 27) g_stop = true;
        }
        total_ms[WRITE] += ms_since(t);
        ++n;
    }
    const double wall_s = ms_since(t_start) / 1000.0;
    const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    writer.release();
    if (n == 0) throw UserError("no frame was written", EXIT_NO_OUTPUT);
    std::printf("%ld frames %dx%d in %.2f s: %.1f fps; model input %dx%d\n", n, size.width, size.height, wall_s,
                static_cast<double>(n) / wall_s, input.width, input.height);
    std::printf("ms per frame:");
    double sum = 0;
    for (int s = 0; s < N_STAGES; ++s) {
        std::printf(" %s %.2f,", names[s], total_ms[s] / static_cast<double>(n));
        sum += total_ms[s];
    }
    std::printf(" total %.2f; CPU %.2f ms per frame\n", sum / static_cast<double>(n), cpu_ms / static_cast<double>(n));
    std::printf("wrote %s\n", out.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
        const Args a = parse_args(argc, argv);
        if (a.command == "help") {
            std::cout << USAGE;
            return 0;
        }
        cv::setNumThreads(a.threads);
        if (a.command == "matte") return cmd_matte(a, argv[0]);
        if (a.command == "composite") return cmd_composite(a, argv[0]);
        return cmd_video(a, argv[0]);
    } catch (const UserError& e) {
        std::cerr << "bgswap-cpp: error: " << e.what() << "\n";
        return e.code;
    } catch (const cv::Exception& e) {
        std::cerr << "bgswap-cpp: OpenCV error: " << e.what() << "\n";
        return EXIT_INTERNAL;
    } catch (const std::exception& e) {
        std::cerr << "bgswap-cpp: error: " << e.what() << "\n";
        return EXIT_INTERNAL;
    } catch (...) {
        std::cerr << "bgswap-cpp: unknown error\n";
        return EXIT_INTERNAL;
    }
}
