// vsrn_embed: embeds images and captions with vsrn-deploy's exported graphs through the ONNX Runtime
// C++ API, or checks the graphs against the test vectors the export wrote beside them.
// C++17, ONNX Runtime only. `vsrn_embed --help` and README.md say how to use it.
//
// Exit status: 0 done (check: every output within the tolerance), 1 check: an output differs by more,
// 2 bad usage or unreadable/unfit input (one `error: ...` line on stderr).
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

const char* const kUsage = R"(usage: vsrn_embed EXPORT_DIR [options]

Check (no --images, no --token-ids): runs EXPORT_DIR/test_vectors/ through the graphs and compares
every output with the one ONNX Runtime gave in Python at export (the FP32 graphs' outputs).
Exit 0 when every output is within the tolerance, 1 when one is not.

Embed your own inputs (one kind per run):
  --images FILE        region features, float32 [N, regions, feature_dim]
  --token-ids FILE     token ids, int64 [N, T], padded with 0 (<pad>)
  --lengths FILE       the captions' lengths, int64 [N] (ids counted with <start> and <end>)
  --out FILE           writes the image (or text) embeddings, float32 [N, embed_dim]
  --regions-out FILE   with --images: also the region embeddings, float32 [N, regions, embed_dim]
  --batch N            rows per graph run (default 32)
  A FILE ending in .npy is a NumPy array (little-endian, C order; ids and lengths int64 or int32);
  any other name is raw little-endian C-order values like the export's test_vectors/*.bin, whose
  shape follows from the graph (features) or from the lengths (ids). Output: .npy, else raw.
  Captions must be tokenised first (token ids): this program has no tokenizer (README.md).

Options:
  --precision P        fp32 (default), fp16 or int8: image_encoder[.fp16|.int8].onnx and
                       text_encoder[.fp16|.int8].onnx of EXPORT_DIR
  --image-graph FILE   another image graph (a name inside EXPORT_DIR)
  --text-graph FILE    another text graph (a name inside EXPORT_DIR)
  --tolerance X        check: the largest max abs diff allowed; default by precision: fp32 1e-5,
                       fp16 5e-3, int8 3e-2 (the lower precisions are compared with the FP32
                       outputs, a distance of the model; README.md gives the ones measured)
  --threads N          ONNX Runtime intra-op threads (default 1)
  -h, --help           this text
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Array {
  std::string dtype;              // "float32" or "int64"
  std::vector<int64_t> shape;
  std::vector<float> f32;         // dtype float32
  std::vector<int64_t> i64;       // dtype int64

  int64_t count() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  }
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot open " + path);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

// Raw little-endian values (the files are little-endian, as is every platform ONNX Runtime ships for).
template <typename T>
std::vector<T> raw_values(const std::string& bytes, const std::string& path) {
  if (bytes.size() % sizeof(T) != 0) {
    throw UsageError(path + " has " + std::to_string(bytes.size()) + " bytes, not a whole number of " +
                     std::to_string(sizeof(T)) + "-byte values");
  }
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

template <typename T>
std::vector<T> read_raw(const std::string& path, int64_t count) {
  auto values = raw_values<T>(read_all(path), path);
  if (static_cast<int64_t>(values.size()) != count) {
    throw UsageError(path + " does not hold exactly " + std::to_string(count) + " values");
  }
  return values;
}

// A .npy file (format 1.0, 2.0 or 3.0): float32 -> f32; int64 or int32 -> i64 (when want is int64).
Array read_npy(const std::string& path, const std::string& want) {
  const std::string bytes = read_all(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw UsageError(path + " is not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    start = 10;
  } else if ((major == 2 || major == 3) && bytes.size() >= 12) {
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    start = 12;
  } else {
    throw UsageError(path + ": .npy format version " + std::to_string(major) + " is not supported");
  }
  if (start + header_len > bytes.size()) throw UsageError(path + ": truncated .npy header");
  const std::string header = bytes.substr(start, header_len);
  auto field = [&](const std::string& key) {
    const auto at = header.find("'" + key + "'");
    if (at == std::string::npos) throw UsageError(path + ": .npy header has no " + key);
    return header.substr(header.find(':', at) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  const std::string order = field("fortran_order");
  if (order.compare(order.find_first_not_of(' '), 5, "False") != 0) {
    throw UsageError(path + " is in Fortran order; save a C-order array (np.ascontiguousarray)");
  }
  std::string dims = field("shape");
  dims = dims.substr(dims.find('(') + 1, dims.find(')') - dims.find('(') - 1);
  Array a;
  std::replace(dims.begin(), dims.end(), ',', ' ');
  std::istringstream fields(dims);
  for (int64_t d; fields >> d;) a.shape.push_back(d);
  const std::string data = bytes.substr(start + header_len);
  if (want == "float32" && descr == "<f4") {
    a.dtype = "float32";
    a.f32 = raw_values<float>(data, path);
  } else if (want == "int64" && descr == "<i8") {
    a.dtype = "int64";
    a.i64 = raw_values<int64_t>(data, path);
  } else if (want == "int64" && descr == "<i4") {
    a.dtype = "int64";
    const auto narrow = raw_values<int32_t>(data, path);
    a.i64.assign(narrow.begin(), narrow.end());
  } else {
    throw UsageError(path + " holds " + descr + " values, not " +
                     (want == "float32" ? "float32 (<f4)" : "int64 (<i8) or int32 (<i4)"));
  }
  const size_t values = a.dtype == "float32" ? a.f32.size() : a.i64.size();
  if (static_cast<int64_t>(values) != a.count()) {
    throw UsageError(path + " holds " + std::to_string(values) + " values, not the " +
                     std::to_string(a.count()) + " of its shape " + shape_text(a.shape));
  }
  return a;
}

// A user's file: .npy, or raw values whose shape is [count / row, row_shape...].
Array read_input(const std::string& path, const std::string& dtype, const std::vector<int64_t>& row_shape) {
  if (ends_with(path, ".npy")) return read_npy(path, dtype);
  Array a;
  a.dtype = dtype;
  const std::string bytes = read_all(path);
  const size_t values = dtype == "float32" ? (a.f32 = raw_values<float>(bytes, path)).size()
                                           : (a.i64 = raw_values<int64_t>(bytes, path)).size();
  const int64_t row = std::accumulate(row_shape.begin(), row_shape.end(), int64_t{1}, std::multiplies<int64_t>());
  if (row <= 0 || static_cast<int64_t>(values) % row != 0) {
    throw UsageError(path + " holds " + std::to_string(values) + " values, not a whole number of rows of " +
                     shape_text(row_shape));
  }
  a.shape = {static_cast<int64_t>(values) / row};
  a.shape.insert(a.shape.end(), row_shape.begin(), row_shape.end());
  return a;
}

void write_output(const std::string& path, const std::vector<float>& values, const std::vector<int64_t>& shape) {
  std::string bytes;
  if (ends_with(path, ".npy")) {
    std::string dims;
    for (auto d : shape) dims += std::to_string(d) + ", ";
    if (shape.size() > 1) dims.resize(dims.size() - 1);  // (3, 16) but (3,)
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";  // data starts at a multiple of 64
    bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>(header.size() >> 8);
    bytes += header;
  }
  bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())) || !out.flush()) {
      throw UsageError("cannot write " + path);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw UsageError("cannot write " + path);
  std::cout << "wrote " << path << " float32 " << shape_text(shape) << "\n";
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

// Rows [begin, end) of an array as a tensor; ONNX Runtime reads the buffer in place (`a` outlives Run).
Ort::Value rows_tensor(const Ort::MemoryInfo& memory, const Array& a, int64_t begin, int64_t end) {
  std::vector<int64_t> shape = a.shape;
  shape[0] = end - begin;
  const int64_t row = a.shape[0] ? a.count() / a.shape[0] : 0;
  if (a.dtype == "float32") {
    return Ort::Value::CreateTensor<float>(memory, const_cast<float*>(a.f32.data() + begin * row),
                                           static_cast<size_t>((end - begin) * row), shape.data(), shape.size());
  }
  return Ort::Value::CreateTensor<int64_t>(memory, const_cast<int64_t*>(a.i64.data() + begin * row),
                                           static_cast<size_t>((end - begin) * row), shape.data(), shape.size());
}

// Runs a graph over the inputs (same first dimension) in chunks of `batch` rows; returns each output
// (float32) concatenated along the first dimension.
std::vector<Array> run_graph(Ort::Session& session, const std::vector<std::string>& input_names,
                             const std::vector<const Array*>& inputs, const std::vector<std::string>& output_names,
                             int64_t batch) {
  Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<const char*> in_names, out_names;
  for (const auto& name : input_names) in_names.push_back(name.c_str());
  for (const auto& name : output_names) out_names.push_back(name.c_str());
  const int64_t n = inputs[0]->shape[0];
  std::vector<Array> outs(output_names.size());
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    std::vector<Ort::Value> feeds;
    for (const Array* a : inputs) feeds.push_back(rows_tensor(memory, *a, begin, end));
    auto results = session.Run(Ort::RunOptions{nullptr}, in_names.data(), feeds.data(), feeds.size(),
                               out_names.data(), out_names.size());
    for (size_t i = 0; i < results.size(); ++i) {
      auto info = results[i].GetTensorTypeAndShapeInfo();
      if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        throw UsageError(output_names[i] + " is not float32 in this graph");
      }
      const float* data = results[i].GetTensorData<float>();
      outs[i].dtype = "float32";
      outs[i].f32.insert(outs[i].f32.end(), data, data + info.GetElementCount());
      outs[i].shape = info.GetShape();
    }
  }
  for (auto& out : outs) {
    if (out.shape.empty()) out.shape = {0};
    out.shape[0] = n;
  }
  return outs;
}

std::vector<int64_t> input_shape(Ort::Session& session, size_t index) {
  return session.GetInputTypeInfo(index).GetTensorTypeAndShapeInfo().GetShape();
}

// Compares every output with the expected array; returns false if one differs by more than tol.
bool compare(const std::vector<std::string>& names, const std::vector<Array>& got,
             const std::map<std::string, Array>& arrays, double tol) {
  bool ok = true;
  for (size_t i = 0; i < names.size(); ++i) {
    const Array& want = need(arrays, names[i]);
    if (got[i].shape != want.shape) {
      std::cout << names[i] << ": shape " << shape_text(got[i].shape) << " differs from the expected "
                << shape_text(want.shape) << " FAIL\n";
      ok = false;
      continue;
    }
    double worst = 0.0;
    for (size_t j = 0; j < want.f32.size(); ++j) {
      const double diff = std::fabs(static_cast<double>(got[i].f32[j]) - static_cast<double>(want.f32[j]));
      if (!(diff <= worst)) worst = diff;  // NaN counts as worst
    }
    const bool pass = worst <= tol;
    std::cout << names[i] << ": max_abs_diff=" << worst << (pass ? " ok" : " FAIL") << " (tolerance " << tol
              << ", " << want.f32.size() << " values)\n";
    ok = ok && pass;
  }
  return ok;
}

struct Options {
  std::string export_dir, precision = "fp32", image_graph, text_graph;
  std::string images, token_ids, lengths, out, regions_out;
  double tol = 0.0;
  bool tol_given = false;  // else the precision's default
  int threads = 1;
  int64_t batch = 32;
};

double default_tolerance(const std::string& precision) {
  // fp32: ONNX Runtime C++ vs Python on the same graph (measured 0). fp16 / int8: the lower precision's
  // distance from the FP32 outputs, which depends on the model; README.md gives what was measured.
  // Measured (README.md): fp16 up to 1.3e-3, int8 up to 1.4e-2 on tiny random models.
  return precision == "fp32" ? 1e-5 : precision == "fp16" ? 5e-3 : 3e-2;
}

template <typename T>
T number(const std::string& option, const std::string& text) {
  std::istringstream in(text);
  T value{};
  if (!(in >> value) || !in.eof()) throw UsageError(option + " needs a number, got '" + text + "'");
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  const std::map<std::string, std::string*> strings = {
      {"--precision", &o.precision}, {"--image-graph", &o.image_graph}, {"--text-graph", &o.text_graph},
      {"--images", &o.images},       {"--token-ids", &o.token_ids},     {"--lengths", &o.lengths},
      {"--out", &o.out},             {"--regions-out", &o.regions_out}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (strings.count(arg)) {
      if (!has_value) throw UsageError(arg + " needs a value");
      *strings.at(arg) = argv[++i];
    } else if (arg == "--tolerance" || arg == "--threads" || arg == "--batch") {
      if (!has_value) throw UsageError(arg + " needs a value");
      const std::string value = argv[++i];
      if (arg == "--tolerance") o.tol = number<double>(arg, value), o.tol_given = true;
      if (arg == "--threads") o.threads = number<int>(arg, value);
      if (arg == "--batch") o.batch = number<int64_t>(arg, value);
    } else if (arg.rfind("-", 0) != 0 && o.export_dir.empty()) {
      o.export_dir = arg;
    } else {
      throw UsageError("unknown argument " + arg + " (vsrn_embed --help)");
    }
  }
  if (o.export_dir.empty()) throw UsageError("no EXPORT_DIR (vsrn_embed --help)");
  if (o.precision != "fp32" && o.precision != "fp16" && o.precision != "int8") {
    throw UsageError("--precision must be fp32, fp16 or int8, not " + o.precision);
  }
  const std::string suffix = o.precision == "fp32" ? ".onnx" : "." + o.precision + ".onnx";
  if (o.image_graph.empty()) o.image_graph = "image_encoder" + suffix;
  if (o.text_graph.empty()) o.text_graph = "text_encoder" + suffix;
  if (!o.tol_given) o.tol = default_tolerance(o.precision);
  if (!(o.tol >= 0)) throw UsageError("--tolerance must be a number >= 0");
  if (o.threads < 1) throw UsageError("--threads must be at least 1");
  if (o.batch < 1) throw UsageError("--batch must be at least 1");
  const bool text = !o.token_ids.empty() || !o.lengths.empty();
  if (!o.images.empty() && text) throw UsageError("give --images or --token-ids/--lengths, not both, per run");
  if (text && (o.token_ids.empty() || o.lengths.empty())) throw UsageError("--token-ids and --lengths go together");
  if ((!o.images.empty() || text) && o.out.empty()) throw UsageError("--out FILE: where to write the embeddings");
  if (o.images.empty() && !text && (!o.out.empty() || !o.regions_out.empty())) {
    throw UsageError("--out needs --images or --token-ids and --lengths");
  }
  if (!o.regions_out.empty() && o.images.empty()) throw UsageError("--regions-out goes with --images");
  return o;
}

void embed_images(Ort::Session& session, const Options& o) {
  auto shape = input_shape(session, 0);  // [batch, regions, feature_dim]; batch dynamic
  if (shape.size() != 3 || shape[1] <= 0 || shape[2] <= 0) throw UsageError(o.image_graph + ": unexpected input shape");
  const Array features = read_input(o.images, "float32", {shape[1], shape[2]});
  if (features.shape.size() != 3 || features.shape[1] != shape[1] || features.shape[2] != shape[2]) {
    throw UsageError(o.images + " has shape " + shape_text(features.shape) + "; the image graph takes [N, " +
                     std::to_string(shape[1]) + ", " + std::to_string(shape[2]) + "]");
  }
  if (features.shape[0] == 0) throw UsageError(o.images + " holds no image");
  for (float v : features.f32) {
    if (!std::isfinite(v)) throw UsageError(o.images + " holds a NaN or infinite value");
  }
  const auto outs = run_graph(session, {"region_features"}, {&features}, {"image_embedding", "region_embeddings"},
                              o.batch);
  write_output(o.out, outs[0].f32, outs[0].shape);
  if (!o.regions_out.empty()) write_output(o.regions_out, outs[1].f32, outs[1].shape);
}

void embed_texts(Ort::Session& session, const Options& o) {
  Array lengths = read_input(o.lengths, "int64", {});
  if (lengths.shape.size() == 2 && lengths.shape[1] == 1) lengths.shape.pop_back();  // [N, 1] as Triton's
  if (lengths.shape.size() != 1 || lengths.shape[0] == 0) {
    throw UsageError(o.lengths + " has shape " + shape_text(lengths.shape) + ", not [N] with N >= 1");
  }
  const int64_t n = lengths.shape[0];
  Array ids;
  if (ends_with(o.token_ids, ".npy")) {
    ids = read_npy(o.token_ids, "int64");
  } else {
    ids.dtype = "int64";
    ids.i64 = raw_values<int64_t>(read_all(o.token_ids), o.token_ids);
    if (ids.i64.size() % static_cast<size_t>(n) != 0) {
      throw UsageError(o.token_ids + " holds " + std::to_string(ids.i64.size()) + " ids, not a whole row for each of the " +
                       std::to_string(n) + " lengths");
    }
    ids.shape = {n, static_cast<int64_t>(ids.i64.size()) / n};
  }
  if (ids.shape.size() != 2 || ids.shape[0] != n) {
    throw UsageError(o.token_ids + " has shape " + shape_text(ids.shape) + "; with " + std::to_string(n) +
                     " lengths it must be [" + std::to_string(n) + ", T]");
  }
  for (int64_t row = 0; row < n; ++row) {
    const int64_t len = lengths.i64[row];
    if (len < 2 || len > ids.shape[1]) {
      throw UsageError("caption " + std::to_string(row) + " has length " + std::to_string(len) +
                       ": a length counts <start> and <end>, so it is from 2 to the ids' width " +
                       std::to_string(ids.shape[1]));
    }
  }
  for (int64_t v : ids.i64) {
    if (v < 0) throw UsageError(o.token_ids + " holds a negative id");
  }
  const auto outs = run_graph(session, {"token_ids", "lengths"}, {&ids, &lengths}, {"text_embedding"}, o.batch);
  write_output(o.out, outs[0].f32, outs[0].shape);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << kUsage;
      return 0;
    }
  }
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }

  try {
    // ONNX Runtime's own log stays quiet: its errors reach the one `error:` line below as exceptions
    Ort::Env env(ORT_LOGGING_LEVEL_FATAL, "vsrn_embed");
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(o.threads);
    auto open = [&](const std::string& name) {
      const std::string path = o.export_dir + "/" + name;
      if (!std::ifstream(path)) throw UsageError("cannot open " + path);
      return Ort::Session(env, path.c_str(), options);
    };
    if (!o.images.empty()) {
      Ort::Session image = open(o.image_graph);
      embed_images(image, o);
      return 0;
    }
    if (!o.token_ids.empty()) {
      Ort::Session text = open(o.text_graph);
      embed_texts(text, o);
      return 0;
    }
    const auto arrays = read_vectors(o.export_dir + "/test_vectors");
    std::cout << "ONNX Runtime " << Ort::GetVersionString() << " (headers: C API " << ORT_API_VERSION << "), "
              << o.image_graph << " and " << o.text_graph << " vs the FP32 outputs of test_vectors/\n";
    Ort::Session image = open(o.image_graph);
    const std::vector<std::string> image_outputs = {"image_embedding", "region_embeddings"};
    const bool image_ok = compare(image_outputs, run_graph(image, {"region_features"},
                                                           {&need(arrays, "region_features")}, image_outputs, o.batch),
                                  arrays, o.tol);
    Ort::Session text = open(o.text_graph);
    const bool text_ok = compare({"text_embedding"},
                                 run_graph(text, {"token_ids", "lengths"},
                                           {&need(arrays, "token_ids"), &need(arrays, "lengths")}, {"text_embedding"},
                                           o.batch),
                                 arrays, o.tol);
    const bool ok = image_ok && text_ok;
    std::cout << (ok ? "PASS" : "FAIL") << ": C++ embeddings " << (ok ? "match" : "differ from") << " Python's\n";
    return ok ? 0 : 1;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const Ort::Exception& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << "error: ONNX Runtime: " << what << "\n";
    return 2;
  }
}
