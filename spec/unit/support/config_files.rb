# frozen_string_literal: true

# Config files written to a fresh temporary directory and loaded as `lunar -C` loads them.
module ConfigFiles
  # `[loaded DSL, path]` for `text` saved as `name`.
  def load_config(text, name = "lunar.rb")
    path = File.join(scratch_dir("lunar-config"), name)
    File.write(path, text)
    [Lunar::DSL.load(path), path]
  end
end

RSpec.configure { |config| config.include ConfigFiles }
