#pragma once

// The Numenta Anomaly Benchmark (NAB v1.1) scorer, written from the
// description in ../shared/data/nab/SCORING.md (which cites NAB's
// sweeper.py, scorer.py, optimizer.py and runner.py): anomaly windows,
// probationary period, scaled-sigmoid row weights, the three cost profiles,
// the exact global threshold sweep, and normalisation between the null and
// the perfect detector. `parallax bench nab` runs Parallax's `baseline`
// detector over the corpus and prints its scores next to the published ones.

#include "parallax/pipeline/baseline.hpp"
#include "parallax/schemas/error.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace parallax::bench {

/// One data file: rows in file order, windows as inclusive row ranges.
struct nab_file {
  std::string name;                    ///< "category/file.csv"
  std::vector<std::string> timestamps; ///< "YYYY-MM-DD HH:MM:SS"
  std::vector<double> values;
  struct window {
    std::size_t first = 0; ///< row of the window's start (first occurrence)
    std::size_t last = 0;  ///< row of its end (inclusive)
  };
  std::vector<window> windows; ///< sorted, disjoint
};

/// A cost profile (config/profiles.json); A_TN is never used by NAB.
struct nab_profile {
  std::string name;
  double tp = 1.0;  ///< A_TP
  double fn = 1.0;  ///< A_FN
  double fp = 0.11; ///< A_FP
};

/// standard, reward_low_FP_rate, reward_low_FN_rate (in that order).
std::vector<nab_profile> nab_profiles();

/// Reads `dir`/data/**/*.csv (sorted by path) and `dir`/labels/
/// combined_windows.json. Fails naming the file (and line) that is missing
/// or malformed, or the window boundary that matches no row.
result<std::vector<nab_file>> load_nab_corpus(const std::string& dir);

/// The probationary length of a file of `rows` rows:
/// min(floor(0.15 * rows), 750).
std::size_t nab_probation(std::size_t rows);

/// The outcome at one threshold ("detect iff score >= threshold").
struct nab_outcome {
  double threshold = 1.1;
  double score = 0; ///< raw score S(threshold), summed over the files
  std::size_t tp = 0, tn = 0, fp = 0, fn = 0; ///< non-probationary rows
};

/// NAB's optimiser: the exact sweep over every distinct non-probationary
/// score (plus 1.1) of all files together; the highest raw score wins,
/// ties going to the highest threshold. `scores[i]` holds one score per row
/// of `files[i]`.
nab_outcome nab_optimize(const std::vector<nab_file>& files,
                         const std::vector<std::vector<double>>& scores,
                         const nab_profile& profile);

/// The raw score at a fixed threshold (NAB's scorer.py).
nab_outcome nab_score_at(const std::vector<nab_file>& files,
                         const std::vector<std::vector<double>>& scores,
                         const nab_profile& profile, double threshold);

/// 100 * (raw - null) / (perfect - null), null = -windows * A_FN and
/// perfect = windows * A_TP.
double nab_normalize(double raw, std::size_t windows,
                     const nab_profile& profile);

/// Runs one fresh `baseline` per file over its rows in file order (event
/// time from the timestamp) and returns its scores.
std::vector<std::vector<double>>
nab_detect(const std::vector<nab_file>& files, const baseline_options& opts);

struct nab_options {
  std::string data; ///< NAB directory; empty: $PARALLAX_NAB_DIR, else
                    ///< ../shared/data/nab
  bool json = false;
};

/// `parallax bench nab`: the table (or one JSON line). Exit code.
int run_nab(const nab_options& opts);

} // namespace parallax::bench
