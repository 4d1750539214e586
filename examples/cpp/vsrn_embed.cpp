// vsrn_embed: embeds images and captions with vsrn-deploy's exported graphs through the ONNX Runtime
// C++ API, and checks the result against the test vectors the export wrote beside the graphs.
//
//   vsrn_embed EXPORT_DIR [--tolerance 1e-5] [--threads N]
//              [--image-graph image_encoder.onnx] [--text-graph text_encoder.onnx]
//
// Reads EXPORT_DIR/image_encoder.onnx, EXPORT_DIR/text_encoder.onnx (or the graphs named by
// --image-graph / --text-graph, e.g. image_encoder.int8.onnx) and EXPORT_DIR/test_vectors/
// (index.txt: one line `<name> <dtype> <rank> <dims...>` per array, the data in <name>.bin as raw
// little-endian C-order values). Runs region_features through the image graph and token_ids +
// lengths through the text graph, and compares every output with the expected one (computed by
// ONNX Runtime in Python at export, on the FP32 graphs: the FP16 and INT8 graphs differ from them by
// their precision, so give those a tolerance to match).
//
// Exit status: 0 all outputs within the tolerance, 1 an output differs by more, 2 bad usage or
// unreadable files (one `error:` line).
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Array {
  std::string dtype;              // "float32" or "int64"
  std::vector<int64_t> shape;
  std::vector<float> f32;         // dtype float32
  std::vector<int64_t> i64;       // dtype int64

  int64_t count() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  }
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
std::vector<T> read_raw(const std::string& path, int64_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot open " + path);
  std::vector<T> data(static_cast<size_t>(count));
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (in.gcount() != static_cast<std::streamsize>(count * sizeof(T)) || in.peek() != EOF) {
    throw UsageError(path + " does not hold exactly " + std::to_string(count) + " values");
  }
  return data;  // the files are little-endian, as is every platform ONNX Runtime ships for
}

// index.txt -> arrays by name
std::map<std::string, Array> read_vectors(const std::string& folder) {
  std::ifstream index(folder + "/index.txt");
  if (!index) throw UsageError("cannot open " + folder + "/index.txt (export with a current vsrn-deploy)");
  std::map<std::string, Array> arrays;
  std::string line;
  while (std::getline(index, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name;
    Array a;
    size_t rank = 0;
    if (!(fields >> name >> a.dtype >> rank)) throw UsageError("bad index line: " + line);
    a.shape.resize(rank);
    for (auto& d : a.shape) {
      if (!(fields >> d) || d < 0) throw UsageError("bad index line: " + line);
    }
    const std::string path = folder + "/" + name + ".bin";
    if (a.dtype == "float32") {
      a.f32 = read_raw<float>(path, a.count());
    } else if (a.dtype == "int64") {
      a.i64 = read_raw<int64_t>(path, a.count());
    } else {
      throw UsageError("unknown dtype " + a.dtype + " in " + line);
    }
    arrays.emplace(name, std::move(a));
  }
  return arrays;
}

const Array& need(const std::map<std::string, Array>& arrays, const std::string& name) {
  auto it = arrays.find(name);
  if (it == arrays.end()) throw UsageError("test_vectors/index.txt has no " + name);
  return it->second;
}

Ort::Value as_tensor(const Ort::MemoryInfo& memory, const Array& a) {
  // ONNX Runtime reads the buffer in place; `a` outlives the Run call.
  if (a.dtype == "float32") {
    return Ort::Value::CreateTensor<float>(memory, const_cast<float*>(a.f32.data()), a.f32.size(),
                                           a.shape.data(), a.shape.size());
  }
  return Ort::Value::CreateTensor<int64_t>(memory, const_cast<int64_t*>(a.i64.data()), a.i64.size(),
                                           a.shape.data(), a.shape.size());
}

// Runs one graph; returns false if any output differs from the expected array by more than tol.
bool check_graph(Ort::Env& env, const Ort::SessionOptions& options, const std::string& model_path,
                 const std::map<std::string, Array>& arrays, const std::vector<std::string>& inputs,
                 const std::vector<std::string>& outputs, double tol) {
  Ort::Session session(env, model_path.c_str(), options);
  Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<Ort::Value> feeds;
  std::vector<const char*> in_names, out_names;
  for (const auto& name : inputs) {
    feeds.push_back(as_tensor(memory, need(arrays, name)));
    in_names.push_back(name.c_str());
  }
  for (const auto& name : outputs) out_names.push_back(name.c_str());
  auto results = session.Run(Ort::RunOptions{nullptr}, in_names.data(), feeds.data(), feeds.size(),
                             out_names.data(), out_names.size());
  bool ok = true;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Array& want = need(arrays, outputs[i]);
    auto info = results[i].GetTensorTypeAndShapeInfo();
    if (info.GetShape() != want.shape) {
      std::cout << outputs[i] << ": shape differs from the expected one\n";
      ok = false;
      continue;
    }
    const float* got = results[i].GetTensorData<float>();
    double worst = 0.0;
    for (size_t j = 0; j < want.f32.size(); ++j) {
      const double diff = std::fabs(static_cast<double>(got[j]) - static_cast<double>(want.f32[j]));
      if (!(diff <= worst)) worst = diff;  // NaN counts as worst
    }
    const bool pass = worst <= tol;
    std::cout << outputs[i] << ": max_abs_diff=" << worst << (pass ? " ok" : " FAIL") << " (tolerance " << tol
              << ", " << want.f32.size() << " values)\n";
    ok = ok && pass;
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string export_dir;
  double tol = 1e-5;
  int threads = 1;
  std::string image_graph = "image_encoder.onnx", text_graph = "text_encoder.onnx";
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--tolerance" && i + 1 < argc) {
        tol = std::stod(argv[++i]);
      } else if (arg == "--threads" && i + 1 < argc) {
        threads = std::stoi(argv[++i]);
      } else if (arg == "--image-graph" && i + 1 < argc) {
        image_graph = argv[++i];
      } else if (arg == "--text-graph" && i + 1 < argc) {
        text_graph = argv[++i];
      } else if (arg.rfind("--", 0) != 0 && export_dir.empty()) {
        export_dir = arg;
      } else {
        throw UsageError("unknown argument " + arg);
      }
    }
    if (export_dir.empty()) {
      throw UsageError("usage: vsrn_embed EXPORT_DIR [--tolerance 1e-5] [--threads N] "
                       "[--image-graph image_encoder.onnx] [--text-graph text_encoder.onnx]");
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }

  try {
    const auto arrays = read_vectors(export_dir + "/test_vectors");
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "vsrn_embed");
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(threads);
    std::cout << "ONNX Runtime " << Ort::GetVersionString() << " (headers: C API " << ORT_API_VERSION << ")\n";
    const bool image_ok = check_graph(env, options, export_dir + "/" + image_graph, arrays, {"region_features"},
                                      {"image_embedding", "region_embeddings"}, tol);
    const bool text_ok = check_graph(env, options, export_dir + "/" + text_graph, arrays,
                                     {"token_ids", "lengths"}, {"text_embedding"}, tol);
    const bool ok = image_ok && text_ok;
    std::cout << (ok ? "PASS" : "FAIL") << ": C++ embeddings " << (ok ? "match" : "differ from") << " Python's\n";
    return ok ? 0 : 1;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const Ort::Exception& e) {
    std::cerr << "error: ONNX Runtime: " << e.what() << "\n";
    return 2;
  }
}
