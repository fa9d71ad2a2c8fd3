"""Settings: one home for what a user can set (``schema``), its JSON form (``convert``, ``files``) and
its command-line options (``cli_options``)."""
from .convert import from_dict, get_path, set_path, to_dict
from .files import SettingsStore, config_path, load_config_file, user_config_dir
from .schema import (DEFAULT_BACKGROUND, EngineSettings, GuiSettings, OutputSettings, Settings, SettingsError,
                     check_settings)

__all__ = ["DEFAULT_BACKGROUND", "EngineSettings", "GuiSettings", "OutputSettings", "Settings", "SettingsError",
           "SettingsStore", "check_settings", "config_path", "from_dict", "get_path", "load_config_file",
           "set_path", "to_dict", "user_config_dir"]
