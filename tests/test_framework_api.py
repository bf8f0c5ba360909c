"""The framework modules' public names (issue 16): the notebooks were re-cut into one definition per cell, and this
pins what each module exports (its `__all__`; loggers are private) and that every exported name is a real object."""
import importlib

import pytest

PUBLIC = {
    'mlkit': ['MLKit', 'backtest', 'datasets', 'load_dataset', 'load_model', 'monitor_market', 'study', 'train',
              'walk_forward'],
    'mlkit.core': ['ConfigError', 'DEFAULTS', 'DataError', 'JsonFormatter', 'MlkitError', 'NotFittedError',
                   'SchemaError', 'Settings', 'get_logger', 'git_commit', 'git_dirty', 'load_settings',
                   'package_versions', 'read_parquet', 'seed_everything', 'settings', 'setup_logging'],
    'mlkit.data': ['CLEAN_STRATEGIES', 'Column', 'FILL_STRATEGIES', 'IMAGE_SUFFIXES', 'MissingFiller', 'SCALERS',
                   'SPLIT_METHODS', 'Scaler', 'Schema', 'TABLE_FORMATS', 'TimeSeriesGapSplit', 'clean', 'load_image',
                   'load_table', 'preprocess_images', 'split', 'validate'],
    'mlkit.datasets': ['DATA_DIR', 'DatasetInfo', 'SCHEMAS', 'info', 'load', 'names', 'sha256_file'],
    'mlkit.models': ['AutoGluonModel', 'CatBoostModel', 'InputTypeError', 'LogisticModel', 'MODEL_NAMES',
                     'MajorityClassifier', 'MlkitClassifier', 'ModelCard', 'frame_sha256', 'load_model', 'make_card',
                     'make_model'],
    'mlkit.trainer': ['ACTIVATIONS', 'Evaluation', 'LAYER_TYPES', 'LOSSES', 'MODEL_TYPES', 'ModelTrainer', 'OPTIMIZERS',
                      'OUTPUTS', 'UNSUPPORTED_LAYERS', 'add_layer', 'add_output_layer', 'compile_model', 'evaluate',
                      'fit', 'load', 'make_card', 'predict', 'predict_proba', 'score', 'set_logger', 'train'],
    'mlkit.search': ['BACKENDS', 'CV_METHODS', 'SearchResult', 'check_grid', 'grid_search', 'make_cv'],
    'mlkit.onnx': ['OnnxModel', 'compare', 'prune', 'quantize_int8', 'sparsity', 'to_onnx'],
    'mlkit.validation': ['BacktestResult', 'EXECUTIONS', 'backtest', 'classification_metrics', 'infer_periods_per_year',
                         'positions_from_proba', 'return_metrics'],
    'mlkit.walkforward': ['ALTERNATIVES', 'BACKENDS', 'BOOTSTRAP_METHODS', 'BootstrapResult', 'MODES',
                          'WalkForwardResult', 'binomial_test', 'block_bootstrap', 'fold_threads', 'make_folds',
                          'monte_carlo', 'sharpe_test', 'walk_forward'],
    'mlkit.store': ['BENTO_MANIFEST', 'MANIFEST_FORMAT', 'REGISTRY_FILE', 'STAGES', 'bento_manifest', 'delete_model',
                    'history', 'list_models', 'load_model', 'production_tag', 'promote', 'rollback', 'save_model',
                    'store_home', 'using_home'],
    'mlkit.bentohome': ['bentoml_env', 'store_home', 'using_home'],
    'mlkit.db': ['Base', 'Fixed', 'MIGRATED', 'dispose_engines', 'get_engine', 'get_sessionmaker', 'init_db',
                 'session_scope'],
    'mlkit.reports': ['render', 'stable_html', 'template_parameters'],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_unchanged(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == PUBLIC[module]
    missing = [n for n in mod.__all__ if getattr(mod, n, None) is None]
    assert not missing, f"{module} exports names that are not defined (or are None): {missing}"
